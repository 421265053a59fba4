import numpy as np
import pytest

from selfdrive.controls.lib import long_mpc
from selfdrive.controls.lib.long_mpc import (
    A_CRUISE_MIN,
    ACCEL_MIN,
    JERK_MAX,
    JERK_MIN,
    STOP_DISTANCE,
    T_FOLLOW,
    T_IDXS,
    Lead,
    LongitudinalMpc,
    a_cruise_max,
    fcw_needed,
    predict_lead,
)

SCENARIOS = {
    "speed up": dict(v0=20.0, a0=0.0, v_cruise=25.0),
    "slow to set speed": dict(v0=30.0, a0=0.0, v_cruise=20.0),
    "from stop": dict(v0=0.0, a0=0.0, v_cruise=15.0),
    "lead braking": dict(v0=30.0, a0=0.0, v_cruise=30.0, lead=Lead(49.5, 30.0, -3.0)),
    "stopped lead far": dict(v0=25.0, a0=0.0, v_cruise=30.0, lead=Lead(150.0, 0.0, 0.0)),
    "stopped lead too close": dict(v0=30.0, a0=0.0, v_cruise=30.0, lead=Lead(30.0, 0.0, 0.0)),
    "hard initial accel": dict(v0=10.0, a0=-9.0, v_cruise=10.0),
    "curve": dict(v0=25.0, a0=0.0, v_cruise=30.0, v_max=np.full(long_mpc.N, 15.0)),
}


@pytest.fixture(scope="module")
def mpc():
    return LongitudinalMpc()


class TestLimits:
    @pytest.mark.parametrize("name", list(SCENARIOS))
    def test_plan_respects_comfort_limits(self, mpc, name):
        sol = mpc.solve(**SCENARIOS[name])
        assert sol.ok, sol.status
        assert np.isfinite(np.concatenate([sol.s, sol.v, sol.a, sol.j])).all()
        tol = 1e-3
        assert sol.a.min() >= ACCEL_MIN - tol
        assert sol.a[1:].max() <= max(a_cruise_max(SCENARIOS[name]["v0"]), 0) + tol
        assert sol.j.min() >= JERK_MIN - tol and sol.j.max() <= JERK_MAX + tol
        assert sol.v.min() >= 0.0
        # the states are consistent with the jerks (the dynamics are exact, not approximated)
        a_int = sol.a[0] + np.concatenate(([0.0], np.cumsum(sol.j[:-1] * np.diff(T_IDXS))))
        np.testing.assert_allclose(sol.a, a_int, atol=1e-6)
        assert len(sol.t) == len(sol.v) == len(sol.a) == len(sol.j) == len(T_IDXS)


class TestCruise:
    def test_speeds_up_to_set_speed_without_overshoot(self, mpc):
        sol = mpc.solve(v0=20.0, a0=0.0, v_cruise=25.0)
        assert sol.v[-1] == pytest.approx(25.0, abs=0.3)
        assert sol.v.max() < 25.2
        assert np.all(np.diff(sol.v) >= -1e-3)

    def test_lower_set_speed_slows_gently(self, mpc):
        sol = mpc.solve(v0=30.0, a0=0.0, v_cruise=20.0)
        assert sol.v[-1] < 21.0
        assert sol.a.min() >= A_CRUISE_MIN - 0.2  # the set speed alone never brakes hard

    def test_holds_speed_at_set_speed(self, mpc):
        sol = mpc.solve(v0=20.0, a0=0.0, v_cruise=20.0)
        assert np.abs(sol.a).max() < 0.03  # the solver's tolerance, not a plan to change speed

    def test_curve_limit_slows_below_it(self, mpc):
        sol = mpc.solve(v0=25.0, a0=0.0, v_cruise=30.0, v_max=np.full(long_mpc.N, 15.0))
        assert sol.v[-1] < 15.5
        assert sol.a[1] < 0

    def test_accel_is_clipped_into_limits(self, mpc):
        sol = mpc.solve(v0=10.0, a0=-9.0, v_cruise=10.0)
        assert sol.a[0] == ACCEL_MIN


class TestLead:
    def test_stops_behind_stopped_lead(self, mpc):
        sol = mpc.solve(v0=25.0, a0=0.0, v_cruise=30.0, lead=Lead(150.0, 0.0, 0.0))
        assert sol.slack < 0.05  # feasible: the constraint holds (to the solver's tolerance)
        assert sol.v[-1] < 5.0
        assert np.all(sol.s + T_FOLLOW["standard"] * sol.v <= 150.0 - STOP_DISTANCE + 0.2)

    def test_follows_steady_lead_at_time_gap(self, mpc):
        v = 20.0
        gap = STOP_DISTANCE + T_FOLLOW["standard"] * v
        sol = mpc.solve(v0=v, a0=0.0, v_cruise=30.0, lead=Lead(gap, v, 0.0))
        assert np.abs(sol.v - v).max() < 0.1

    def test_keeps_following_constraint_when_feasible(self, mpc):
        lead = Lead(49.5, 30.0, -3.0)
        sol = mpc.solve(v0=30.0, a0=0.0, v_cruise=30.0, lead=lead)
        s_lead, _ = predict_lead(lead, T_IDXS)
        assert np.all(sol.s + T_FOLLOW["standard"] * sol.v <= s_lead - STOP_DISTANCE + 0.2)

    def test_impossible_gap_uses_slack_and_brakes_hard(self, mpc):
        sol = mpc.solve(v0=30.0, a0=0.0, v_cruise=30.0, lead=Lead(30.0, 0.0, 0.0))
        assert sol.ok and sol.slack > 1.0
        assert sol.a.min() == pytest.approx(ACCEL_MIN, abs=1e-3)

    @pytest.mark.parametrize("personality", ["aggressive", "standard", "relaxed"])
    def test_personality_sets_following_gap(self, personality):
        mpc = LongitudinalMpc(T_FOLLOW[personality])
        v = 20.0
        # at its own gap each personality just follows
        sol = mpc.solve(v0=v, a0=0.0, v_cruise=30.0, lead=Lead(STOP_DISTANCE + T_FOLLOW[personality] * v, v, 0.0))
        assert np.abs(sol.v - v).max() < 0.15
        # at the standard gap, aggressive closes in and relaxed drops back
        sol = mpc.solve(v0=v, a0=0.0, v_cruise=30.0, lead=Lead(STOP_DISTANCE + T_FOLLOW["standard"] * v, v, 0.0))
        moved = {"aggressive": sol.v.max() - v > 0.3, "standard": np.abs(sol.v - v).max() < 0.15,
                 "relaxed": v - sol.v.min() > 0.3}
        assert moved[personality]


class TestCutIn:
    def test_car_cutting_in_at_our_speed_is_dropped_back_from_gently(self, mpc):
        sol = mpc.solve(v0=27.0, a0=0.0, v_cruise=30.0, lead=Lead(20.0, 27.0, 0.0))
        assert -1.5 < sol.a.min() < 0.0  # without the recovery allowance this is an emergency stop (-3.5)

    @pytest.mark.parametrize("gap, v_lead", [(20.0, 27.0), (30.0, 20.0), (12.0, 22.0), (40.0, 15.0)])
    def test_recovery_never_comes_closer_than_stop_distance(self, mpc, gap, v_lead):
        lead = Lead(gap, v_lead, 0.0)
        sol = mpc.solve(v0=27.0, a0=0.0, v_cruise=30.0, lead=lead)
        s_lead, _ = predict_lead(lead, T_IDXS)
        if sol.slack < 0.05:
            assert np.all(s_lead - sol.s >= STOP_DISTANCE - 0.2)
        # by the end of the horizon the time gap is back
        assert s_lead[-1] - sol.s[-1] >= STOP_DISTANCE + T_FOLLOW["standard"] * sol.v[-1] - 0.5


class TestPredictLead:
    def test_braking_lead_stops_and_stays(self):
        s, v = predict_lead(Lead(10.0, 30.0, -3.0), T_IDXS)
        assert v[-1] == 0.0 and np.all(np.diff(s) >= 0)
        assert s[-1] == pytest.approx(10.0 + 30.0 ** 2 / 6.0)

    def test_accelerating_lead_fades(self):
        _, v = predict_lead(Lead(10.0, 10.0, 2.0), T_IDXS)
        assert v[-1] < 10.0 + 2.0 * long_mpc.LEAD_ACCEL_TAU + 1e-6


class TestFcw:
    @pytest.mark.parametrize("v_ego, a_ego, lead, expected", [
        (30.0, 0.0, Lead(30.0, 0.0, 0.0), True),      # stopped car 30 m ahead at 108 km/h
        (30.0, 0.0, Lead(200.0, 0.0, 0.0), False),    # far enough to stop with our own braking
        (30.0, 0.0, Lead(49.5, 30.0, -3.0), False),   # braking lead at a normal gap: we manage
        (30.0, 0.0, Lead(15.0, 20.0, -6.0), True),    # close lead braking very hard
        (20.0, 0.0, Lead(30.0, 20.0, 0.0), False),    # close but not closing
    ])
    def test_fcw_only_when_max_braking_cannot_keep_a_gap(self, v_ego, a_ego, lead, expected):
        assert fcw_needed(v_ego, a_ego, lead) is expected


class TestSolverFailure:
    def test_failed_solve_gives_finite_fallback(self, monkeypatch):
        mpc = LongitudinalMpc()

        class Info:
            status = "primal infeasible"

        class Res:
            info, x = Info(), None

        monkeypatch.setattr(mpc.solver, "solve", lambda **kw: Res())
        sol = mpc.solve(v0=20.0, a0=0.5, v_cruise=20.0, lead=Lead(40.0, 10.0, 0.0))
        assert not sol.ok and sol.status == "primal infeasible"
        assert np.isfinite(sol.a).all() and sol.a[-1] == pytest.approx(-1.0)
