"""torqued: learning the car's steering response (selfdrive/locationd/torque_estimator.py) and the daemon's cycle
on a synthetic timeline of a car whose steering differs from its carParams."""

import math

import numpy as np
import pytest

from cereal import messaging
from common.params import Params
from selfdrive.controls.lib.drive_helpers import slip_factor, steering_from_curvature
from selfdrive.controls.lib.latcontrol_torque import TorqueParams
from selfdrive.controls.tests.synth import car_params
from selfdrive.locationd.torque_estimator import (
    BOUNDS,
    DECIMATE,
    FULL_POINTS,
    MIN_SPREAD,
    SteerResponse,
    TorqueEstimator,
    stored_response,
)
from selfdrive.locationd.torqued import SUBSCRIBES, Torqued
from selfdrive.selfdrived.tests.fake_inputs import FakePM, Feeder

CAR = SteerResponse(2.5, 0.0, 0.1)  # synth.car_params' torque tuning


def feed(est: TorqueEstimator, true: SteerResponse, seconds: float, seed: int = 0, noise: float = 0.02,
         t0: float = 0.0) -> None:
    """Steady curves of both directions at 100 Hz: the car holds `la` with the torque `true` says it needs."""
    rng = np.random.default_rng(seed)
    n = round(seconds * 100)
    la = 1.2 * np.sin(2 * np.pi * np.arange(n) / 100 / 20.0)  # a 20 s period: jerk up to 0.38 m/s³
    rate = np.gradient(la, 0.01)
    for i in range(n):
        direction = min(max(rate[i] / 0.1, -1.0), 1.0)
        torque = (la[i] - true.lat_accel_offset + true.friction * direction) / true.lat_accel_factor
        est.add(t0 + i * 0.01, 25.0, la[i] + rng.normal(0, noise), rate[i], torque, True, False)


class TestEstimator:
    @pytest.mark.parametrize("gain", [0.5, 1.0, 2.0])
    def test_learns_a_car_that_differs_from_its_params(self, gain):
        true = SteerResponse(CAR.lat_accel_factor * gain, 0.1, 0.05)
        est = TorqueEstimator(CAR)
        feed(est, true, 120.0)
        e = est.update()
        assert e.fit is not None and e.confidence == 1.0 and e.source == "learned"
        assert e.response.lat_accel_factor == pytest.approx(true.lat_accel_factor, rel=0.03)
        assert e.response.lat_accel_offset == pytest.approx(0.1, abs=0.03)
        assert e.response.friction == pytest.approx(0.05, abs=0.03)

    def test_confidence_moves_the_estimate_from_the_prior_gradually(self):
        est = TorqueEstimator(CAR)
        assert est.update().response == CAR and est.estimate.source == "carParams"
        feed(est, SteerResponse(5.0, 0.0, 0.1), 0.4 * FULL_POINTS * DECIMATE / 100)
        e = est.update()
        assert 0.2 < e.confidence < 0.6 and e.source == "learning"
        assert CAR.lat_accel_factor < e.response.lat_accel_factor < e.fit.lat_accel_factor

    def test_outliers_do_not_move_it(self):
        est = TorqueEstimator(CAR)
        feed(est, SteerResponse(4.0, 0.0, 0.0), 100.0)
        rng = np.random.default_rng(1)
        for i in range(3000):  # a tenth of the points: torque that has nothing to do with the car's response
            est.add(200.0 + i * 0.01, 25.0, rng.uniform(-1, 1), 0.0, rng.uniform(-0.9, 0.9), True, False)
        assert est.update().fit.lat_accel_factor == pytest.approx(4.0, rel=0.03)

    def test_a_straight_road_alone_teaches_nothing(self):
        est = TorqueEstimator(CAR)
        for i in range(12000):
            est.add(i * 0.01, 25.0, 0.0 + 0.01 * math.sin(i), 0.0, 0.0, True, False)
        e = est.update()
        assert e.confidence == 0.0 and e.response == CAR

    def test_a_long_straight_after_the_curves_keeps_what_they_taught(self):
        # gentle curves teach a car steering half as much; then 60 s of straight fill the straight's bin, the
        # points' spread falls below MIN_SPREAD and no new fit can be made: the learnt estimate stays
        true = SteerResponse(CAR.lat_accel_factor * 0.5, 0.0, 0.0)
        est = TorqueEstimator(CAR)
        for i in range(4000):
            la = 0.18 * math.sin(2 * math.pi * i / 100 / 20.0)
            est.add(i * 0.01, 25.0, la, 0.0, la / true.lat_accel_factor, True, False)
        learnt = est.update()
        assert learnt.source == "learned" and learnt.response.lat_accel_factor == pytest.approx(1.25, rel=0.05)
        for i in range(6000):
            est.add(100.0 + i * 0.01, 25.0, 0.0, 0.0, 0.0, True, False)
        assert np.std(est.points()[:, 0]) < MIN_SPREAD  # nothing the fit could use now
        e = est.update()
        assert e.source == "learned" and e.response == learnt.response and e.points > learnt.points

    def test_an_implausible_fit_is_rejected_with_its_reason(self):
        est = TorqueEstimator(CAR)
        feed(est, SteerResponse(CAR.lat_accel_factor * BOUNDS[1] * 1.5, 0.0, 0.0), 100.0)
        e = est.update()
        assert e.fit is None and "outside" in e.rejected and e.response == CAR

    @pytest.mark.parametrize("why, args", [
        ("driver steers", dict(lat_active=True, steering_pressed=True)),
        ("not steering", dict(lat_active=False, steering_pressed=False)),
        ("slow", dict(v_ego=5.0)),
        ("saturated", dict(torque=1.0)),
        ("moving fast", dict(lat_accel_rate=2.0)),
    ])
    def test_only_steady_steering_of_ours_counts(self, why, args):
        est = TorqueEstimator(CAR)
        base = dict(v_ego=25.0, lat_accel=0.5, lat_accel_rate=0.0, torque=0.2, lat_active=True, steering_pressed=False)
        added = sum(est.add(i * 0.01, **(base | args)) for i in range(1000))
        assert added == 0, why
        assert sum(est.add(20.0 + i * 0.01, **base) for i in range(1000)) > 0  # the same, steady and ours, counts

    def test_points_wait_for_lateral_control_to_settle(self):
        est = TorqueEstimator(CAR)
        base = dict(v_ego=25.0, lat_accel=0.5, lat_accel_rate=0.0, torque=0.2, steering_pressed=False)
        assert not any(est.add(i * 0.01, lat_active=True, **base) for i in range(90))

    def test_the_stored_estimate_of_this_car_is_the_prior(self):
        stored = {"car": "SYNTH_SEDAN", "latAccelFactor": 3.0, "latAccelOffset": 0.05, "friction": 0.08,
                  "confidence": 1.0, "points": 900}
        r = stored_response(stored, "SYNTH_SEDAN")
        est = TorqueEstimator(CAR, r)
        assert est.update().response == r and est.estimate.source == "stored"
        assert stored_response(stored, "ANOTHER_CAR") is None
        assert stored_response({"car": "SYNTH_SEDAN", "latAccelFactor": "x"}, "SYNTH_SEDAN") is None
        implausible = SteerResponse(CAR.lat_accel_factor * 10, 0.0, 0.0)
        assert TorqueEstimator(CAR, implausible).update().response == CAR


def synth_car(factor: float):
    """A car whose steering holds `factor` m/s² per unit torque (carParams: 2.5), on 20 s S-bends at 25 m/s."""
    CP = car_params()
    slip = slip_factor(CP)

    def edit_cs(h, msg):
        la = 1.2 * math.sin(2 * math.pi * h.feeder.t / 20.0)
        cs = msg.carState
        cs.vEgo = 25.0
        cs.steeringAngleDeg = steering_from_curvature(la / 625.0, CP.steerRatio, CP.wheelbase, 25.0, slip)

    def edit_out(h, msg):
        # the command that holds the curvature of one actuator delay later
        la = 1.2 * math.sin(2 * math.pi * (h.feeder.t + CP.steerActuatorDelay) / 20.0)
        msg.carOutput.actuatorsOutput.torque = la / factor

    return CP, edit_cs, edit_out


class Harness:
    def __init__(self, factor: float, tmp_path, stored: dict | None = None):
        self.params = Params(str(tmp_path / "params"))
        if stored is not None:
            self.params.put("LiveTorqueParameters", stored)
        CP, edit_cs, edit_out = synth_car(factor)
        self.feeder = Feeder(SUBSCRIBES)
        self.feeder.edit["carState"] = lambda m: edit_cs(self, m)
        self.feeder.edit["carOutput"] = lambda m: edit_out(self, m)
        self.feeder.edit["carControl"] = lambda m: setattr(m.carControl, "latActive", True)
        self.sm = messaging.SubMaster(SUBSCRIBES, poll="carState")
        self.d = Torqued(CP, self.params, self.sm, FakePM())

    def run(self, seconds: float):
        for _ in range(round(seconds / 0.01)):
            self.sm.update_msgs(self.feeder.t, self.feeder.step())
            if self.sm.updated["carState"]:
                self.d.step()
        return self.d.pm.last("liveTorqueParameters")


class TestDaemon:
    def test_learns_twice_the_torque_response_and_stores_it(self, tmp_path):
        h = Harness(5.0, tmp_path)
        m = h.run(130.0)
        lt = m.liveTorqueParameters
        assert m.valid and lt.source == "learned" and lt.confidence == 1.0 and lt.fitValid
        assert lt.latAccelFactor == pytest.approx(5.0, rel=0.05) and lt.carLatAccelFactor == 2.5
        assert h.params.wait_written()
        stored = h.params.get("LiveTorqueParameters")
        assert stored["car"] == "SYNTH_SEDAN" and stored["latAccelFactor"] == pytest.approx(5.0, rel=0.05)
        # the next drive starts from it, and controlsd's controller takes it
        h2 = Harness(5.0, tmp_path)
        lt2 = h2.run(1.0).liveTorqueParameters
        assert lt2.source == "stored" and lt2.latAccelFactor == pytest.approx(stored["latAccelFactor"])
        p = TorqueParams.from_car_params(car_params()).learned(lt2.latAccelFactor, lt2.latAccelOffset, lt2.friction)
        assert p is not None and p.lat_accel_factor == pytest.approx(5.0, rel=0.05)

    def test_answers_every_carstate_from_the_start(self, tmp_path):
        # one answer per carState: the lockstep simulator waits for it, so the estimate reaches controlsd at the same
        # cycle whatever the machine's load
        h = Harness(2.5, tmp_path)
        h.run(2.0)
        sent = h.d.pm.sent["liveTorqueParameters"]
        assert len(sent) == 200
        assert sent[0].liveTorqueParameters.source == "carParams" and sent[0].liveTorqueParameters.latAccelFactor == 2.5

    def test_another_cars_record_is_not_used(self, tmp_path):
        h = Harness(2.5, tmp_path, {"car": "OTHER", "latAccelFactor": 4.0, "latAccelOffset": 0.0, "friction": 0.0,
                                    "confidence": 1.0, "points": 900})
        assert h.run(0.5).liveTorqueParameters.source == "carParams"


class TestControllerTakesIt:
    def test_implausible_values_never_reach_the_controller(self):
        p = TorqueParams.from_car_params(car_params())
        assert p.learned(math.nan, 0.0, 0.0) is None
        assert p.learned(2.5 * BOUNDS[1] * 1.01, 0.0, 0.0) is None
        assert p.learned(2.5 * BOUNDS[0] * 0.99, 0.0, 0.0) is None
        assert p.learned(2.5, 0.0, -0.1) is None
        assert p.learned(4.0, 0.1, 0.2) == TorqueParams(4.0, 0.1, 0.2, p.steer_limit_timer)
