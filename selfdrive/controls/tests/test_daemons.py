"""plannerd's and controlsd's cycles on a synthetic timeline (SubMaster.update_msgs), without sockets."""

import numpy as np
import pytest

from cereal import messaging
from common.realtime import DT_CTRL, DT_MDL
from selfdrive.controls.controlsd import SUBSCRIBES as CONTROLS_SERVICES
from selfdrive.controls.controlsd import Controls
from selfdrive.controls.lib.drive_helpers import MAX_LATERAL_JERK, PLAN_SMOOTH_S
from selfdrive.controls.plannerd import SUBSCRIBES as PLANNER_SERVICES
from selfdrive.controls.plannerd import Planner
from selfdrive.controls.tests.synth import SynthLead, car_params, fill_model
from selfdrive.selfdrived.tests.fake_inputs import FakePM, Feeder


def engaged(msg):
    msg.selfdriveState.enabled = msg.selfdriveState.active = True
    msg.selfdriveState.personality = "standard"


class PlannerHarness:
    def __init__(self):
        self.feeder = Feeder(PLANNER_SERVICES)
        self.sm = messaging.SubMaster(PLANNER_SERVICES, poll="modelV2", ignore_valid=["selfdriveState"])
        self.p = Planner(car_params(), sm=self.sm, pm=FakePM())

    def run(self, seconds: float):
        for _ in range(round(seconds / 0.01)):
            self.sm.update_msgs(self.feeder.t, self.feeder.step())
            if self.sm.updated["modelV2"]:
                self.p.publish(self.p.step())
        return self.p.pm.last("longitudinalPlan")


class TestPlannerd:
    def test_plan_behind_a_lead_in_a_curve(self):
        h = PlannerHarness()
        t0 = h.feeder.t  # a lead doing 15 m/s, 30 m ahead at the start, closing at 5 m/s (carState: we do 20)
        h.feeder.edit["modelV2"] = lambda m: fill_model(m.modelV2, v=20.0, curvature=0.004,
                                                        lead=SynthLead(30.0 - 5.0 * (h.feeder.t - t0), 15.0, 0.0))
        h.feeder.edit["selfdriveState"] = engaged
        m = h.run(2.0)
        p = m.longitudinalPlan
        assert m.valid and p.hasLead and not p.fcw
        assert len(p.t) == len(p.speeds) == len(p.accels) == len(p.jerks) == 27
        assert p.aTarget < 0 and min(p.speeds) < 15.5  # closing in on a slower lead: slow down to its speed
        assert p.vCruise == 25.0 and p.personality == "standard" and p.modelMonoTime == h.sm.logMonoTime["modelV2"]
        assert p.solverExecutionTime > 0

    @staticmethod
    def curve_plan(**torqued):
        """The plan for a 250 m curve at 20 m/s (1.6 m/s²) by a car whose carParams say 2.5 m/s² at full torque,
        with torqued's estimate set to `torqued` (liveTorqueParameters fields; none: torqued has said nothing)."""
        h = PlannerHarness()
        h.feeder.edit["modelV2"] = lambda m: fill_model(m.modelV2, v=20.0, curvature=0.004)
        h.feeder.edit["selfdriveState"] = engaged
        if torqued:
            def estimate(m):
                lt = m.liveTorqueParameters
                lt.carLatAccelFactor = 2.5
                for k, v in torqued.items():
                    setattr(lt, k, v)
            h.feeder.edit["liveTorqueParameters"] = estimate
        return list(h.run(1.0).longitudinalPlan.speeds)

    def test_curves_are_slowed_for_as_far_as_the_learnt_steering_reaches(self):
        # learnt at 2.5 m/s² at full torque: curves at 1.5 m/s² (19.4 m/s here); learnt at 1.0: at 0.75 (13.7 m/s)
        learnt = self.curve_plan(latAccelFactor=2.5, confidence=1.0, source="learned")
        weak = self.curve_plan(latAccelFactor=1.0, confidence=1.0, source="learned")
        assert min(weak) < min(learnt) - 1.0
        # beyond x3 of carParams: not believed, the car is as unlearnt as with no estimate at all
        assert self.curve_plan(latAccelFactor=10.0, confidence=1.0, source="learned") == self.curve_plan()

    def test_a_car_not_learnt_yet_takes_curves_as_if_it_steered_half_as_much(self):
        # nothing learnt: 2.5 counts as 1.25 (0.94 m/s², 15.3 m/s); an earlier drive's stored estimate counts fully
        learnt = self.curve_plan(latAccelFactor=2.5, confidence=1.0, source="learned")
        unlearnt = self.curve_plan()
        assert min(unlearnt) < min(learnt) - 1.0
        assert self.curve_plan(latAccelFactor=2.5, confidence=0.0, source="carParams") == unlearnt
        assert self.curve_plan(latAccelFactor=2.5, confidence=0.0, source="stored", priorStored=True) == learnt
        halfway = self.curve_plan(latAccelFactor=2.5, confidence=0.5, source="learning")
        assert min(unlearnt) < min(halfway) < min(learnt)

    def test_a_fit_that_says_the_car_steers_less_counts_at_once(self):
        # still learning (used: 2.2, 30% confident) but the points already say 1.0: curves as for 1.0 (0.75 m/s²)
        weak_fit = self.curve_plan(latAccelFactor=2.2, confidence=0.3, source="learning", fitValid=True,
                                   latAccelFactorFit=1.0)
        assert weak_fit == self.curve_plan(latAccelFactor=1.0, confidence=1.0, source="learned")
        strong_fit = self.curve_plan(latAccelFactor=2.6, confidence=0.3, source="learning", fitValid=True,
                                     latAccelFactorFit=4.0)
        assert strong_fit == self.curve_plan(latAccelFactor=2.6, confidence=0.3, source="learning")

    def test_validity_follows_model_and_carstate_not_selfdrivestate(self):
        h = PlannerHarness()
        h.feeder.edit["selfdriveState"] = lambda m: setattr(m, "valid", False)
        assert h.run(1.5).valid
        h.feeder.edit["modelV2"] = lambda m: setattr(m, "valid", False)
        assert not h.run(0.1).valid


def radar_track(d: float, v_rel: float, y: float = 0.0, track_id: int = 7, valid: bool = True):
    """A liveTracks editor: one radar track (distance from the front bumper, as opendbc's RadarData)."""
    def edit(msg):
        msg.valid = valid
        pt = msg.liveTracks.init("points", 1)[0]
        pt.trackId, pt.dRel, pt.yRel, pt.vRel, pt.measured = track_id, d, y, v_rel, True
        pt.aRel = pt.yvRel = float("nan")
    return edit


class TestPlannerdRadar:
    """The model sees a lead at 30 m doing 15 m/s; the radar says how fast it really goes."""

    def run(self, radar_edit, seconds: float = 1.0):
        h = PlannerHarness()
        h.feeder.edit["modelV2"] = lambda m: fill_model(m.modelV2, v=20.0, lead=SynthLead(30.0, 15.0, 0.0))
        h.feeder.edit["selfdriveState"] = engaged
        if radar_edit is not None:
            h.feeder.edit["liveTracks"] = radar_edit
        return h.run(seconds)

    def test_the_radar_track_on_the_model_lead_places_it(self):
        # the track is 28.4 m from the bumper (29.9 m from the camera) and 10 m/s slower than us: the lead does 10
        p = self.run(radar_track(28.4, -10.0)).longitudinalPlan
        assert p.leadSource == "radar" and p.hasLead
        assert p.leadSpeed == pytest.approx(10.0, abs=0.05) and p.leadDistance == pytest.approx(29.9, abs=0.05)
        assert abs(p.leadAccel) < 0.1  # a steady speed: no acceleration
        vision = self.run(None).longitudinalPlan
        assert vision.leadSource == "vision" and vision.leadSpeed > 14.0
        assert p.aTarget < vision.aTarget - 0.3  # a slower lead than the model thought: brake harder

    def test_a_braking_lead_gets_its_deceleration(self):
        h = PlannerHarness()
        h.feeder.edit["modelV2"] = lambda m: fill_model(m.modelV2, v=20.0, lead=SynthLead(30.0, 15.0, 0.0))
        t0 = h.feeder.t  # the lead does 15 m/s and brakes at 3 m/s² (carState: we do 20)
        h.feeder.edit["liveTracks"] = lambda m: radar_track(28.5, -5.0 - 3.0 * (h.feeder.t - t0))(m)
        p = h.run(1.5).longitudinalPlan
        assert p.leadSource == "radar" and p.leadAccel == pytest.approx(-3.0, abs=0.5)

    @pytest.mark.parametrize("why, edit", [
        ("another lane", radar_track(28.4, -10.0, y=3.5)),
        ("far from the model's lead", radar_track(50.0, -10.0)),
        ("invalid radar", radar_track(28.4, -10.0, valid=False)),
    ])
    def test_without_a_matching_valid_track_the_model_places_the_lead(self, why, edit):
        p = self.run(edit).longitudinalPlan
        assert p.leadSource == "vision" and p.leadSpeed > 14.0, why

    def test_radar_alone_makes_no_lead(self):
        h = PlannerHarness()
        h.feeder.edit["modelV2"] = lambda m: fill_model(m.modelV2, v=20.0)
        h.feeder.edit["liveTracks"] = radar_track(20.0, -10.0)
        p = h.run(1.0).longitudinalPlan
        assert not p.hasLead and p.leadSource == "none"

    def test_a_silent_radar_hands_the_lead_back_to_the_model(self):
        h = PlannerHarness()
        h.feeder.edit["modelV2"] = lambda m: fill_model(m.modelV2, v=20.0, lead=SynthLead(30.0, 15.0, 0.0))
        h.feeder.edit["liveTracks"] = radar_track(28.4, -10.0)
        assert h.run(1.0).longitudinalPlan.leadSource == "radar"
        h.feeder.stopped.add("liveTracks")
        assert h.run(0.5).longitudinalPlan.leadSource == "vision"


def curve(curvature: float):
    """A modelV2 editor: the road ahead bends at `curvature` (1/m), seen at our 20 m/s."""
    return lambda m: fill_model(m.modelV2, v=20.0, curvature=curvature, frame_id=m.modelV2.frameId)


class ControlsHarness:
    def __init__(self):
        self.feeder = Feeder(CONTROLS_SERVICES)
        self.sm = messaging.SubMaster(CONTROLS_SERVICES, poll="carState", ignore_valid=["selfdriveState"])
        self.c = Controls(car_params(), sm=self.sm, pm=FakePM())

    def run(self, seconds: float):
        for _ in range(round(seconds / 0.01)):
            self.sm.update_msgs(self.feeder.t, self.feeder.step())
            self.c.step()
        return self.c.pm.last("carControl"), self.c.pm.last("controlsState")


class TestControlsd:
    def test_engaged_drives_and_publishes_every_cycle(self):
        h = ControlsHarness()
        h.feeder.edit["selfdriveState"] = engaged
        cc, cs = h.run(1.5)
        assert cc.valid and cs.valid
        assert cc.carControl.enabled and cc.carControl.latActive and cc.carControl.longActive
        assert len(h.c.pm.sent["carControl"]) == 150  # one per carState: the heartbeat
        assert cs.controlsState.longitudinalState == "pid"

    def test_torqueds_estimate_sets_the_feedforward_when_plausible(self):
        def torque(factor: float | None) -> float:
            h = ControlsHarness()
            h.feeder.edit["selfdriveState"] = engaged
            h.feeder.edit["modelV2"] = curve(0.002)
            if factor is not None:
                def learnt(m):
                    lt = m.liveTorqueParameters
                    lt.latAccelFactor, lt.carLatAccelFactor, lt.source = factor, 2.5, "learned"
                h.feeder.edit["liveTorqueParameters"] = learnt
            cc, _ = h.run(1.0)
            return cc.carControl.actuators.torque
        params = torque(None)      # carParams: 2.5 m/s² per unit torque
        assert torque(5.0) == pytest.approx(params / 2, rel=0.15)  # a car that turns twice as much: half the torque
        assert torque(100.0) == pytest.approx(params)               # not plausible for this car: carParams' stay

    def test_not_engaged_is_released(self):
        h = ControlsHarness()
        cc, _ = h.run(0.5)
        assert not cc.carControl.enabled and not cc.carControl.latActive and cc.carControl.actuators.accel == 0.0

    def test_selfdrived_gone_releases_at_once(self):
        h = ControlsHarness()
        h.feeder.edit["selfdriveState"] = engaged
        h.run(1.0)
        h.feeder.stopped.add("selfdriveState")
        cc, _ = h.run(0.11)  # SubMaster calls a 100 Hz service dead after 10 missed periods
        assert not cc.carControl.enabled and not cc.valid

    def test_late_carstate_holds_the_steering_briefly_then_sends_a_released_heartbeat(self):
        h = ControlsHarness()
        h.feeder.edit["selfdriveState"] = engaged
        h.run(1.0)
        torque = h.c.pm.last("carControl").carControl.actuators.torque
        h.feeder.stopped.add("carState")
        n = len(h.c.pm.sent["carControl"])
        cc, _ = h.run(0.05)
        # a late carState on a loaded machine: the heartbeat goes on and the command holds (released torque would
        # come back only at the car's torque rate limit, 0.4 s later)
        assert len(h.c.pm.sent["carControl"]) == n + 5
        assert cc.carControl.enabled and cc.carControl.latActive
        assert cc.carControl.actuators.torque == pytest.approx(torque, abs=0.05)
        cc, _ = h.run(0.06)  # 10 periods without carState: SubMaster calls it dead, everything is released
        assert len(h.c.pm.sent["carControl"]) == n + 11
        assert not cc.carControl.enabled and not cc.carControl.latActive and not cc.valid

    def test_brake_releases_in_the_same_cycle(self):
        h = ControlsHarness()
        h.feeder.edit["selfdriveState"] = engaged
        h.run(1.0)
        h.feeder.edit["carState"] = lambda m: setattr(m.carState, "brakePressed", True)
        cc, _ = h.run(0.01)
        assert not cc.carControl.enabled and not cc.carControl.longActive

    def test_plan_gone_asks_for_no_acceleration_and_steers_on(self):
        h = ControlsHarness()
        h.feeder.edit["selfdriveState"] = engaged
        h.feeder.edit["modelV2"] = curve(0.002)
        h.feeder.edit["longitudinalPlan"] = lambda m: setattr(m.longitudinalPlan, "accels", [1.0, 1.0, 1.0])
        assert h.run(1.0)[1].controlsState.aTarget == pytest.approx(1.0)
        h.feeder.stopped.add("longitudinalPlan")
        cc, cs = h.run(0.6)
        assert cs.controlsState.aTarget == 0.0 and not cc.valid
        assert cc.carControl.actuators.curvature == pytest.approx(0.002, rel=0.05)  # the steering is the model's

    def test_steers_for_the_models_curve(self):
        h = ControlsHarness()
        h.feeder.edit["selfdriveState"] = engaged
        h.feeder.edit["modelV2"] = curve(0.004)
        cc, cs = h.run(2.0)
        assert cs.controlsState.desiredCurvature == pytest.approx(0.004, rel=0.05)
        assert cc.carControl.actuators.curvature == cs.controlsState.desiredCurvature
        assert cs.controlsState.modelV2MonoTime == h.sm.logMonoTime["modelV2"] > 0

    def test_a_new_curve_is_low_passed_once_per_frame_and_rate_limited_every_cycle(self):
        h = ControlsHarness()
        h.feeder.edit["selfdriveState"] = engaged
        h.run(1.0)
        h.feeder.edit["modelV2"] = curve(0.006)
        h.run(0.05)  # one model frame: the target moves a quarter of the way (DT_MDL / PLAN_SMOOTH_S)
        assert h.c.logic.lat_plan.curvature == pytest.approx(0.006 * DT_MDL / PLAN_SMOOTH_S, rel=0.05)
        # what we command moves towards it at the lateral jerk limit at 20 m/s, cycle by cycle: once, not twice
        step = MAX_LATERAL_JERK / 20.0 ** 2 * DT_CTRL
        got = [m.controlsState.desiredCurvature for m in h.c.pm.sent["controlsState"][-5:]]
        assert got[-1] > 0 and np.diff(got) == pytest.approx(np.full(4, step), rel=1e-3)

    def test_model_gone_holds_the_curvature_and_is_invalid(self):
        h = ControlsHarness()
        h.feeder.edit["selfdriveState"] = engaged
        h.feeder.edit["modelV2"] = curve(0.002)
        h.run(2.0)
        held = h.c.pm.last("controlsState").controlsState.desiredCurvature
        h.feeder.stopped.add("modelV2")
        cc, cs = h.run(0.6)  # selfdrived sees the model stale after 0.25 s and disengages us: until then, the lane
        assert cs.controlsState.desiredCurvature == pytest.approx(held, abs=1e-6) and held > 0.0019
        assert not cc.valid and cc.carControl.latActive

    def test_alert_reaches_the_car_as_sound_and_icon(self):
        h = ControlsHarness()

        def alerting(msg):
            engaged(msg)
            sd = msg.selfdriveState
            sd.alertType, sd.alertSound, sd.alertVisual = "commIssue/softDisable", "warningSoft", "steerRequired"
        h.feeder.edit["selfdriveState"] = alerting
        hud = h.run(0.5)[0].carControl.hudControl
        assert hud.audibleAlert == "warningSoft" and hud.visualAlert == "steerRequired"

    def test_car_cruising_without_us_is_cancelled_once_selfdrived_has_seen_it(self):
        h = ControlsHarness()
        h.feeder.edit["carState"] = lambda m: setattr(m.carState.cruiseState, "enabled", True)
        # selfdrived decided on the carState of the same instant, and did not engage us
        h.feeder.edit["selfdriveState"] = lambda m: setattr(m.selfdriveState, "carStateMonoTime", m.logMonoTime)
        h.run(0.04)
        assert not h.c.pm.last("carControl").carControl.cruiseControl.cancel  # 5 such states first
        assert h.run(0.02)[0].carControl.cruiseControl.cancel
        h.feeder.edit["selfdriveState"] = engaged
        assert not h.run(0.02)[0].carControl.cruiseControl.cancel

    def test_a_late_selfdrived_gets_to_engage_before_the_cruise_is_cancelled(self):
        h = ControlsHarness()
        h.run(0.5)
        before = int(h.feeder.t * 1e9) - 1  # a lagging selfdrived: its states are about carStates before the cruise
        h.feeder.edit["selfdriveState"] = lambda m: setattr(m.selfdriveState, "carStateMonoTime", before)
        h.feeder.edit["carState"] = lambda m: setattr(m.carState.cruiseState, "enabled", True)
        cc, _ = h.run(0.3)
        assert not any(m.carControl.cruiseControl.cancel for m in h.c.pm.sent["carControl"])
        assert not cc.carControl.enabled

        def caught_up(m):
            engaged(m)
            m.selfdriveState.carStateMonoTime = m.logMonoTime
        h.feeder.edit["selfdriveState"] = caught_up
        cc, _ = h.run(0.05)
        assert cc.carControl.enabled and not cc.carControl.cruiseControl.cancel

    def test_a_selfdrived_that_never_answers_has_the_cruise_cancelled(self):
        h = ControlsHarness()
        h.run(0.5)
        before = int(h.feeder.t * 1e9) - 1
        h.feeder.edit["selfdriveState"] = lambda m: setattr(m.selfdriveState, "carStateMonoTime", before)
        h.feeder.edit["carState"] = lambda m: setattr(m.carState.cruiseState, "enabled", True)
        assert not h.run(0.49)[0].carControl.cruiseControl.cancel
        assert h.run(0.02)[0].carControl.cruiseControl.cancel  # 50 cycles unanswered
