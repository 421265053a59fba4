import math

import pytest

from selfdrive.controls.lib.long_mpc import ACCEL_MAX, ACCEL_MIN
from selfdrive.controls.lib.longcontrol import TRANSITIONS, LongControl, LongInputs, LongParams, next_state
from selfdrive.controls.tests.synth import car_params

P_PUSH = LongParams(starting_state=True, v_ego_starting=0.5, start_accel=1.2)
P_PLAIN = LongParams(starting_state=False)


def inputs(**kw) -> LongInputs:
    d = dict(active=True, v_ego=10.0, a_ego=0.0, a_target=0.0, should_stop=False)
    d.update(kw)
    return LongInputs(**d)


STOP = dict(should_stop=True, v_ego=0.1)
GO_AT_STANDSTILL = dict(standstill=True, v_ego=0.0)

# (from, inputs, params, to): every row of TRANSITIONS, the cases where nothing matches, and "not engaged"
CASES = [
    ("off", inputs(**STOP), P_PUSH, "stopping"),
    ("off", inputs(**GO_AT_STANDSTILL), P_PUSH, "starting"),
    ("off", inputs(**GO_AT_STANDSTILL), P_PLAIN, "pid"),
    ("off", inputs(), P_PUSH, "pid"),
    ("pid", inputs(**STOP), P_PUSH, "stopping"),
    ("pid", inputs(), P_PUSH, "pid"),
    ("stopping", inputs(v_ego=0.0), P_PUSH, "starting"),
    ("stopping", inputs(v_ego=0.0), P_PLAIN, "pid"),
    ("stopping", inputs(**STOP), P_PUSH, "stopping"),
    ("stopping", inputs(v_ego=0.0, brake_pressed=True), P_PUSH, "stopping"),
    ("stopping", inputs(v_ego=0.0, cruise_standstill=True), P_PLAIN, "stopping"),
    ("starting", inputs(**STOP), P_PUSH, "stopping"),
    ("starting", inputs(v_ego=1.0), P_PUSH, "pid"),
    ("starting", inputs(v_ego=0.1), P_PUSH, "starting"),
] + [(s, inputs(active=False), P_PUSH, "off") for s in ("off", "pid", "stopping", "starting")]


class TestTransitions:
    @pytest.mark.parametrize("frm, i, p, to", CASES)
    def test_transition(self, frm, i, p, to):
        assert next_state(frm, i, p) == to

    def test_every_table_row_is_covered(self):
        covered = {(frm, to) for frm, _, _, to in CASES}
        assert {(frm, to) for frm, _, to in TRANSITIONS} <= covered


class TestOutput:
    def test_off_is_zero(self):
        lc = LongControl(P_PLAIN)
        assert lc.update(inputs(active=False, a_target=1.0)) == 0.0 and lc.state == "off"

    def test_pid_feeds_forward_the_plan_and_trims_error(self):
        lc = LongControl(LongParams(ki_v=(1.0,)))
        assert lc.update(inputs(a_target=0.8, a_ego=0.8)) == pytest.approx(0.8)
        for _ in range(100):
            out = lc.update(inputs(a_target=0.8, a_ego=0.3))  # the car does less than asked
        assert out == pytest.approx(0.8 + 0.5 * 1.0, abs=0.02)

    def test_stopping_ramps_down_to_stop_accel(self):
        p = LongParams(stop_accel=-1.0, stopping_decel_rate=0.5)
        lc = LongControl(p)
        lc.update(inputs(a_target=0.4, a_ego=0.4))
        outs = [lc.update(inputs(**STOP)) for _ in range(300)]
        assert outs[0] == pytest.approx(-0.005)  # throttle dropped at once, brake ramps at 0.5 m/s³
        assert all(b <= a for a, b in zip(outs, outs[1:], strict=False))
        assert outs[-1] == -1.0 and lc.state == "stopping"

    def test_starting_pushes_with_start_accel(self):
        lc = LongControl(P_PUSH)
        lc.update(inputs(**STOP))
        assert lc.update(inputs(v_ego=0.0)) == 1.2 and lc.state == "starting"

    def test_output_within_limits(self):
        lc = LongControl(LongParams(kp_v=(5.0,)))
        assert lc.update(inputs(a_target=3.0, a_ego=-5.0)) == ACCEL_MAX
        assert lc.update(inputs(a_target=-9.0, a_ego=5.0)) == ACCEL_MIN
        assert lc.update(inputs(a_target=1.0), accel_min=-1.0, accel_max=0.5) == 0.5


class TestParams:
    def test_from_car_params(self):
        p = LongParams.from_car_params(car_params(stopAccel=-1.5, startingState=True))
        assert p.stop_accel == -1.5 and p.starting_state and p.ki_v == (0.5,)

    def test_bad_tables_and_numbers_fall_back(self):
        CP = car_params(vEgoStopping=math.nan)
        CP.longitudinalTuning.kpBP = [0.0, 1.0]  # lengths no longer match kpV
        p = LongParams.from_car_params(CP)
        assert p.kp_v == LongParams().kp_v and p.v_ego_stopping == LongParams().v_ego_stopping
