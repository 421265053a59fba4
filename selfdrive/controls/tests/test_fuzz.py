"""No carControl value is ever non-finite, whatever the inputs: fuzzed with NaN/inf and garbage shapes."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cereal import messaging
from selfdrive.controls.lib.controls_logic import ControlsLogic, PlanView, SelfdriveView
from selfdrive.controls.lib.drive_helpers import LaneView, desired_curvature
from selfdrive.controls.lib.longitudinal_planner import LongitudinalPlanner
from selfdrive.controls.lib.model_data import ModelData, parse_model
from selfdrive.controls.tests.synth import SynthLead, car_params, car_state, model_msg, parsed_model

ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=32)
SANE = st.floats(-50.0, 50.0, width=32)
FLOAT = st.one_of(ANY_FLOAT, SANE, st.sampled_from([0.0, math.nan, math.inf, -math.inf, 1e30, -1e30]))
FLOATS = st.lists(FLOAT, min_size=0, max_size=40)


def floats_in(d) -> list[float]:
    if isinstance(d, dict):
        return [x for v in d.values() for x in floats_in(v)]
    if isinstance(d, list):
        return [x for v in d for x in floats_in(v)]
    return [d] if isinstance(d, float) else []


def plan_msg(t, accels, speeds, should_stop=False):
    msg = messaging.new_message("longitudinalPlan")
    p = msg.longitudinalPlan
    p.t, p.accels, p.speeds, p.shouldStop = t, accels, speeds, should_stop
    return messaging.log_from_bytes(msg.to_bytes()).longitudinalPlan


class TestControlsFuzz:
    @settings(max_examples=200, deadline=None)
    @given(v=FLOAT, a=FLOAT, angle=FLOAT, offset=FLOAT, cruise=FLOAT, v_cruise=FLOAT,
           t=FLOATS, accels=FLOATS, speeds=FLOATS, curvature=FLOAT, x=FLOATS, y=FLOATS, lines=FLOATS, age=FLOAT,
           flags=st.lists(st.booleans(), min_size=8, max_size=8))
    def test_car_control_is_always_finite(self, v, a, angle, offset, cruise, v_cruise, t, accels, speeds, curvature,
                                          x, y, lines, age, flags):
        logic = ControlsLogic(car_params())
        CS = car_state(vEgo=v, aEgo=a, steeringAngleDeg=angle, steeringAngleOffsetDeg=offset, vCruise=v_cruise,
                       cruise_speed=cruise, brakePressed=flags[0], gasPressed=flags[1], steeringPressed=flags[2],
                       standstill=flags[3], cruise_enabled=flags[4])
        plan = PlanView.from_msg(plan_msg(t, accels, speeds, flags[5]), age=finite_age(age))
        n = min(len(x), len(y))
        m = min(len(lines), len(y), 8)  # the ego lane: its lines sampled at x = `lines`, centred on `y`
        lanes = LaneView(np.array(lines[:m]), np.array(y[:m]) + 1.8, np.array(y[:m]) - 1.8, (0.9, 0.9), (0.1, 0.1))
        model = parsed_model(curvature=curvature, path=(np.array(x[:n]), np.array(y[:n])), lanes=lanes)
        sd = SelfdriveView(enabled=flags[6], active=flags[6] and flags[7], alert_sound="warningImmediate",
                           alert_visual="fcw")
        for _ in range(3):
            msg, cst = messaging.new_message("carControl"), messaging.new_message("controlsState")
            logic.update(CS, sd, plan, msg.carControl, cst.controlsState, model=model)
            values = floats_in(msg.carControl.to_dict()) + floats_in(cst.controlsState.to_dict())
            assert all(math.isfinite(x) for x in values), msg.carControl

    def test_one_bad_carstate_does_not_poison_the_controllers(self):
        logic = ControlsLogic(car_params())
        sd = SelfdriveView(enabled=True, active=True)
        plan = PlanView(accels=np.full(27, 0.5), speeds=np.full(27, 20.0))
        model = parsed_model(v=20.0, curvature=0.002)
        msg, cst = messaging.new_message("carControl"), messaging.new_message("controlsState")
        logic.update(car_state(vEgo=math.nan, aEgo=0.0), sd, plan, msg.carControl, cst.controlsState, model=model)
        assert not msg.carControl.latActive and msg.carControl.actuators.accel == 0.0
        for i in range(20):
            logic.update(car_state(vEgo=20.0, aEgo=0.0), sd, plan, msg.carControl, cst.controlsState,
                         model=model if i % 5 == 0 else None)
        act = msg.carControl.actuators
        assert msg.carControl.latActive and msg.carControl.longActive
        assert 0 < act.torque < 1 and 0.3 < act.accel < 1.0

    def test_non_finite_actuator_is_zeroed_and_logged(self, monkeypatch):
        logic = ControlsLogic(car_params())
        logged = []
        monkeypatch.setattr("selfdrive.controls.lib.controls_logic.cloudlog.error",
                            lambda msg, extra=None: logged.append(extra))
        monkeypatch.setattr(logic.long, "update", lambda *a, **k: math.nan)
        msg, cst = messaging.new_message("carControl"), messaging.new_message("controlsState")
        logic.update(car_state(vEgo=20.0), SelfdriveView(True, True), PlanView(), msg.carControl, cst.controlsState)
        assert msg.carControl.actuators.accel == 0.0
        assert logged and "accel" in logged[0]["fields"]


def finite_age(age: float) -> float:
    return age if math.isfinite(age) else 0.0


class TestPlannerFuzz:
    @settings(max_examples=80, deadline=None)
    @given(v=FLOAT, a=FLOAT, v_cruise=FLOAT, lead=st.tuples(FLOAT, FLOAT, FLOAT, FLOAT), x=FLOATS, y=FLOATS,
           active=st.booleans(), personality=st.sampled_from(["aggressive", "standard", "relaxed", "bogus"]))
    def test_plan_is_always_finite(self, v, a, v_cruise, lead, x, y, active, personality):
        n = min(len(x), len(y))
        model = parsed_model(v=20.0, lead=SynthLead(*lead), path=(np.array(x[:n]), np.array(y[:n])))
        planner = LongitudinalPlanner()
        for _ in range(2):
            out = planner.update(v, a, v_cruise, model, active, personality)
            arrays = np.concatenate([out.speeds, out.accels, out.jerks])
            assert np.isfinite(arrays).all() and math.isfinite(out.a_target) and math.isfinite(out.v_cruise)

    def test_non_finite_lead_is_no_lead(self):
        assert parsed_model(lead=SynthLead(math.nan, 10.0, 0.0)).lead is None
        assert ModelData().lead is None

    @settings(max_examples=150, deadline=None)
    @given(v=FLOAT, left=FLOATS, right=FLOATS, xs=FLOATS, probs=st.tuples(FLOAT, FLOAT), stds=st.tuples(FLOAT, FLOAT))
    def test_desired_curvature_with_any_lane_lines_is_finite(self, v, left, right, xs, probs, stds):
        n = min(len(left), len(right), len(xs))
        x = np.array(xs[:n])
        lanes = LaneView(x, np.array(left[:n]), np.array(right[:n]), probs, stds)
        model = parsed_model(v=20.0, lanes=lanes)
        k = desired_curvature(model.x, model.y, model.desired_curvature, v, 0.1, model.geometry, model.lanes)
        assert math.isfinite(k)

    def test_lane_lines_reach_the_planner_only_when_they_line_up(self):
        x = np.array([5.0, 10.0, 20.0])
        lanes = LaneView(x, np.full(3, 1.6), np.full(3, -2.1), (0.9, 0.8), (0.1, 0.2))
        got = parsed_model(lanes=lanes).lanes
        np.testing.assert_array_equal(got.x, x)
        np.testing.assert_allclose(got.left, 1.6)
        np.testing.assert_allclose(got.right, -2.1)
        assert got.probs == pytest.approx((0.9, 0.8)) and got.stds == pytest.approx((0.1, 0.2))
        assert parsed_model().lanes is None
        msg = model_msg(lanes=lanes)
        msg.modelV2.laneLines[2].x = [5.0, 10.0, 30.0]  # the right line sampled elsewhere: not a lane
        assert parse_model(messaging.log_from_bytes(msg.to_bytes()).modelV2).lanes is None
