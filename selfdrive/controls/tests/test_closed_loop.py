"""Closed loop: planner + controllers driving the simple plants, at controlsd's and plannerd's rates."""

from dataclasses import dataclass, field

import numpy as np
import pytest

from common.realtime import DT_CTRL, DT_MDL
from selfdrive.controls.lib.drive_helpers import clip_curvature, curvature_from_steering
from selfdrive.controls.lib.latcontrol_torque import LatControlTorque, TorqueParams
from selfdrive.controls.lib.long_mpc import ACCEL_MIN, Lead
from selfdrive.controls.lib.longcontrol import LongControl, LongInputs, LongParams, a_target_from_plan
from selfdrive.controls.lib.longitudinal_planner import LongitudinalPlanner
from selfdrive.controls.lib.model_data import ModelData
from selfdrive.controls.tests.plants import LatPlant, LeadCar, LongPlant
from selfdrive.controls.tests.synth import MODEL_T, arc, car_params

PLAN_EVERY = round(DT_MDL / DT_CTRL)


@dataclass
class LongTrace:
    t: list = field(default_factory=list)
    v: list = field(default_factory=list)
    a: list = field(default_factory=list)
    gap: list = field(default_factory=list)
    fcw: list = field(default_factory=list)


def run_long(v_ego: float, v_cruise, seconds: float, lead: LeadCar | None = None, personality: str = "standard",
             plant: LongPlant | None = None) -> LongTrace:
    """`v_cruise` is a number or a function of time."""
    CP = car_params()
    planner = LongitudinalPlanner(CP.longitudinalActuatorDelay, CP.vEgoStopping)
    lc = LongControl(LongParams.from_car_params(CP))
    ego = plant or LongPlant(v=v_ego)
    tr = LongTrace()
    plan, age = None, 0.0
    for i in range(round(seconds / DT_CTRL)):
        t = i * DT_CTRL
        if i % PLAN_EVERY == 0:
            x, y = arc(max(ego.v, 1.0), 0.0)
            seen = None if lead is None else Lead(lead.x - ego.x, lead.v, lead.a)
            vc = v_cruise(t) if callable(v_cruise) else v_cruise
            plan = planner.update(ego.v, ego.a, vc, ModelData(MODEL_T, x, y, seen), True, personality)
            age = 0.0
        a_target = a_target_from_plan(plan.t, plan.accels, age, CP.longitudinalActuatorDelay)
        cmd = lc.update(LongInputs(True, ego.v, ego.a, a_target, plan.should_stop, standstill=ego.v < 0.01))
        ego.step(cmd)
        if lead is not None:
            lead.step()
            tr.gap.append(lead.x - ego.x)
        age += DT_CTRL
        tr.t.append(t)
        tr.v.append(ego.v)
        tr.a.append(ego.a)
        tr.fcw.append(plan.fcw)
    return tr


class TestLongitudinal:
    def test_lead_braking_hard_from_highway_speed_keeps_a_gap(self):
        lead = LeadCar(x=6.0 + 1.45 * 30.0, v=30.0)
        tr = run_long(30.0, 30.0, 3.0, lead=lead)  # settle behind the lead first
        lead.a = -3.0
        tr2 = run_long(0.0, 30.0, 20.0, lead=lead, plant=_plant_like(tr, lead))
        assert min(tr.gap + tr2.gap) > 2.0
        assert tr2.v[-1] < 0.1 and lead.v == 0.0
        assert tr2.gap[-1] > 3.0  # stopped behind it, not against it
        assert min(tr2.a) >= ACCEL_MIN - 0.1
        assert not any(tr2.fcw)  # we handled it: no warning needed

    def test_stopped_car_ahead_is_a_forward_collision_warning(self):
        tr = run_long(30.0, 30.0, 1.0, lead=LeadCar(x=35.0, v=0.0))
        assert any(tr.fcw[:20])  # within 0.2 s

    def test_speed_step_up_has_no_overshoot(self):
        tr = run_long(20.0, 25.0, 30.0)
        assert max(tr.v) <= 25.5
        assert abs(tr.v[-1] - 25.0) < 0.2

    def test_speed_step_down_has_no_undershoot(self):
        tr = run_long(25.0, 20.0, 30.0)
        assert min(tr.v) >= 19.5
        assert abs(tr.v[-1] - 20.0) < 0.2

    def test_follows_slower_lead_at_personality_gap(self):
        for personality, t_follow in (("aggressive", 1.25), ("relaxed", 1.75)):
            lead = LeadCar(x=60.0, v=20.0)
            tr = run_long(25.0, 30.0, 40.0, lead=lead, personality=personality)
            assert abs(tr.v[-1] - 20.0) < 0.2
            assert tr.gap[-1] == pytest.approx(6.0 + t_follow * 20.0, abs=1.5)

    def test_stops_behind_stopped_lead_and_holds(self):
        lead = LeadCar(x=120.0, v=0.0)
        tr = run_long(20.0, 25.0, 25.0, lead=lead)
        assert tr.v[-1] < 0.05 and 3.0 < tr.gap[-1] < 9.0
        assert not any(tr.fcw)


def _plant_like(tr: LongTrace, lead: LeadCar) -> LongPlant:
    # continue the first phase's ego where it left off, in the lead's frame
    return LongPlant(v=tr.v[-1], a=tr.a[-1], x=lead.x - tr.gap[-1])


def run_lat(step: float, v: float, seconds: float, plant: LatPlant) -> tuple[np.ndarray, np.ndarray]:
    CP = car_params()
    lat = LatControlTorque(TorqueParams.from_car_params(CP))
    desired = 0.0
    t, err = [], []
    for i in range(round(seconds / DT_CTRL)):
        desired, _ = clip_curvature(v, desired, step, DT_CTRL)  # what controlsd does with the lateral plan's target
        actual = curvature_from_steering(plant.steering_angle_deg, CP.steerRatio, CP.wheelbase)
        out = lat.update(True, v, actual, desired)
        plant.step(out.torque)
        t.append(i * DT_CTRL)
        err.append(plant.curvature - step)
    return np.array(t), np.array(err)


class TestLateral:
    @pytest.mark.parametrize("v, step", [(20.0, 0.005), (10.0, 0.015), (30.0, -0.002)])
    def test_curvature_step_settles_within_2s(self, v, step):
        t, err = run_lat(step, v, 5.0, LatPlant(v=v))
        assert np.all(np.abs(err[t >= 2.0]) < 0.05 * abs(step))

    def test_settles_on_a_car_weaker_than_its_params(self):
        # the car delivers 12% less lateral accel per torque than carParams say, and pulls to one side
        t, err = run_lat(0.005, 20.0, 5.0, LatPlant(v=20.0, lat_accel_factor=2.2, lat_accel_offset=0.1))
        assert np.all(np.abs(err[t >= 2.0]) < 0.1 * 0.005)
        assert abs(err[-1]) < 0.05 * 0.005
