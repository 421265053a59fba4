import math
from dataclasses import astuple, fields, replace

import numpy as np
import pytest

from tools.sim.lib.dynamics import (
    STATE_FIELDS,
    Inputs,
    VehicleParams,
    VehicleState,
    cruising_state,
    run,
    step,
    step_python,
)

P = VehicleParams()
DT = 0.01


def simulate(state: VehicleState, inputs: Inputs, seconds: float, params: VehicleParams = P, fn=step) -> VehicleState:
    for _ in range(round(seconds / DT)):
        state = fn(params, state, inputs, DT)
    return state


def random_inputs(rng: np.random.Generator, n: int) -> list[Inputs]:
    """Inputs that change every 0.2 s: every pedal/torque combination, toggles, grades, a few non-finite values."""
    out, cur = [], Inputs()
    for i in range(n):
        if i % 20 == 0:
            cur = Inputs(eps_torque=float(rng.uniform(-1.3, 1.3)),
                         driver_torque=float(rng.choice([0.0, rng.normal(0, 2)])),
                         accel_cmd=float(rng.uniform(-4, 2)), accel_active=bool(rng.random() < 0.7),
                         gas=float(rng.choice([0.0, rng.uniform(0, 1)])),
                         brake=float(rng.choice([0.0, 0.0, rng.uniform(0, 1)])), grade=float(rng.uniform(-0.06, 0.06)))
            if rng.random() < 0.05:
                cur = replace(cur, eps_torque=math.nan, grade=math.inf)
        out.append(cur)
    return out


def assert_close(a: VehicleState, b: VehicleState, tol: float = 1e-9) -> None:
    for name, x, y in zip(STATE_FIELDS, astuple(a), astuple(b), strict=True):
        assert abs(x - y) <= tol * max(1.0, abs(y)), f"{name}: {x} != {y}"


class TestCEqualsPython:
    def test_c_struct_layout_matches_the_dataclasses(self):
        from tools.sim.lib._dynamics import ffi
        for cname, cls in (("vd_params", VehicleParams), ("vd_state", VehicleState), ("vd_inputs", Inputs)):
            ctype = ffi.typeof(cname)
            assert [name for name, _ in ctype.fields] == [f.name for f in fields(cls)]
            assert all(f.type.cname == "double" for _, f in ctype.fields)
            assert ffi.sizeof(ctype) == 8 * len(fields(cls))

    def test_long_random_run(self):
        """60 s of random inputs from a moving start: C and Python stay within 1e-9 at every step."""
        rng = np.random.default_rng(0)
        inputs = random_inputs(rng, 6000)
        c = py = cruising_state(P, 10.0, -3.0, 0.4, 18.0)
        batch = run(P, c, inputs, DT)
        speeds = []
        for i, inp in enumerate(inputs):
            c, py = step(P, c, inp, DT), step_python(P, py, inp, DT)
            assert_close(c, py)
            assert_close(batch[i], py)
            speeds.append(py.vx)
        assert all(math.isfinite(v) for v in astuple(py))
        assert min(speeds) == 0.0 and max(speeds) > 15.0   # the run went through standstill and speed

    def test_random_params_and_steps(self):
        rng = np.random.default_rng(1)
        for _ in range(20):
            params = replace(P, mass=float(rng.uniform(900, 3000)), max_substep=float(rng.uniform(0.0005, 0.01)),
                             eps_tau=float(rng.uniform(0.01, 0.2)), drive_tau=float(rng.uniform(0.001, 0.5)),
                             eps_friction=float(rng.choice([0.0, rng.uniform(0.0, 0.3)])))
            state = VehicleState(vx=float(rng.uniform(0, 35)), steer_angle=float(rng.uniform(-2, 2)),
                                 vy=float(rng.uniform(-0.5, 0.5)), yaw_rate=float(rng.uniform(-0.3, 0.3)))
            dt = float(rng.uniform(0.001, 0.05))
            c = py = state
            for inp in random_inputs(rng, 100):
                c, py = step(params, c, inp, dt), step_python(params, py, inp, dt)
            assert_close(c, py)


class TestTextbook:
    @pytest.mark.parametrize("v", [8.0, 15.0, 25.0, 33.0])
    @pytest.mark.parametrize("wheel_deg", [-40.0, 10.0, 25.0])
    def test_steady_state_yaw_rate_matches_the_bicycle_model_with_understeer(self, v, wheel_deg):
        locked = replace(P, max_steer_rate=0.0)  # the wheel stays where it is put
        state = replace(cruising_state(locked, 0, 0, 0, v), steer_angle=math.radians(wheel_deg))
        state = simulate(state, Inputs(accel_active=True), 8.0, locked)
        delta = math.radians(wheel_deg) / P.steer_ratio
        K = P.mass * (P.cg_to_rear / P.cornering_front - P.cg_to_front / P.cornering_rear) / P.wheelbase
        expected = state.vx * delta / (P.wheelbase + K * state.vx ** 2)
        assert state.vx == pytest.approx(v, rel=1e-3)
        assert state.yaw_rate == pytest.approx(expected, rel=2e-3)
        assert abs(state.yaw_rate) < abs(state.vx * delta / P.wheelbase)   # understeer: less than kinematic
        assert state.lat_accel == pytest.approx(state.vx * state.yaw_rate)

    def test_kinematic_at_low_speed(self):
        locked = replace(P, max_steer_rate=0.0)
        state = replace(cruising_state(locked, 0, 0, 0, 1.5), steer_angle=math.radians(200))
        state = simulate(state, Inputs(accel_active=True), 3.0, locked)
        delta = math.radians(200) / P.steer_ratio
        assert state.yaw_rate == pytest.approx(state.vx * math.tan(delta) / P.wheelbase, rel=1e-9)
        assert state.vy == pytest.approx(state.vx * P.cg_to_rear * math.tan(delta) / P.wheelbase, rel=1e-9)

    def test_blend_from_kinematic_to_dynamic_has_no_jumps(self):
        locked = replace(P, max_steer_rate=0.0)
        state = replace(cruising_state(locked, 0, 0, 0, 1.0), steer_angle=math.radians(90))
        state = step(locked, state, Inputs(accel_active=True, accel_cmd=1.0), DT)   # kinematic from the first step
        prev, jumps = state.yaw_rate, []
        for _ in range(800):   # 1 -> ~9 m/s through the blend band
            state = step(locked, state, Inputs(accel_active=True, accel_cmd=1.0), DT)
            jumps.append(abs(state.yaw_rate - prev))
            prev = state.yaw_rate
        assert state.vx > P.v_dynamic + 1 and max(jumps) < 2e-3

    @pytest.mark.parametrize("v,decel", [(10.0, 2.0), (20.0, 4.0), (30.0, 6.0)])
    def test_stopping_distance_is_v_squared_over_2a(self, v, decel):
        instant = replace(P, brake_tau=1e-6, drive_tau=1e-6)
        state = cruising_state(instant, 0, 0, 0, v)
        steps = 0
        while state.vx > 0.0:
            state = step(instant, state, Inputs(accel_active=True, accel_cmd=-decel), DT)
            steps += 1
        assert state.distance == pytest.approx(v * v / (2 * decel), rel=2e-3)
        assert steps * DT == pytest.approx(v / decel, abs=2 * DT)
        # with the real brake and powertrain lags the car needs about v * lag more, never less
        state = simulate(cruising_state(P, 0, 0, 0, v), Inputs(accel_active=True, accel_cmd=-decel), v / decel + 3)
        extra = state.distance - v * v / (2 * decel)
        assert state.vx == 0.0 and 0.0 < extra < v * (P.brake_tau + P.drive_tau)

    def test_coasting_decel_is_drag_plus_rolling_resistance(self):
        v = 30.0
        state = step(P, VehicleState(vx=v), Inputs(), DT)
        expected = (0.5 * P.air_density * P.drag_area * v * v + P.rolling_resistance * P.mass * 9.81) / P.mass
        assert state.accel == pytest.approx(-expected, rel=1e-3)

    def test_powertrain_limits_and_lag(self):
        slow = simulate(VehicleState(vx=3.0), Inputs(gas=1.0), 1.5)
        assert slow.accel < P.drive_accel_max and slow.accel > 0.8 * P.drive_accel_max - 0.5
        fast = simulate(VehicleState(vx=30.0), Inputs(gas=1.0), 1.5)
        assert fast.drive_force == pytest.approx(P.drive_power_max / fast.vx, rel=0.05)   # power limited
        # first-order lag: 63 % of a step in the demanded force after one time constant
        state = cruising_state(P, 0, 0, 0, 20.0)
        f0 = state.drive_force
        state = simulate(state, Inputs(accel_active=True, accel_cmd=1.0), P.drive_tau)
        target = f0 + P.mass * 1.0
        assert (state.drive_force - f0) / (target - f0) == pytest.approx(1 - math.exp(-1), abs=0.03)

    def test_brake_pedal_and_limit(self):
        state = simulate(cruising_state(P, 0, 0, 0, 25.0), Inputs(brake=1.0, accel_active=True, accel_cmd=1.0), 0.8)
        assert state.brake_force == pytest.approx(P.mass * P.brake_decel_max, rel=0.01)
        assert state.accel < -P.brake_decel_max + 0.5


class TestStandstill:
    def test_stands_still_at_rest_with_no_inputs(self):
        state = simulate(VehicleState(), Inputs(), 10.0)
        assert astuple(state) == astuple(VehicleState())

    @pytest.mark.parametrize("inputs", [Inputs(accel_active=True, accel_cmd=0.0, grade=0.05),
                                        Inputs(brake=0.3, grade=-0.06), Inputs(accel_active=True, accel_cmd=-3.0),
                                        Inputs(grade=0.02)])
    def test_holds_on_grades_and_under_brake(self, inputs):
        for fn in (step, step_python):   # brakes already applied, as a car standing on a hill has them
            state = simulate(VehicleState(x=5.0, yaw=1.0, brake_force=5000.0), inputs, 5.0, fn=fn)
            assert (state.x, state.y, state.yaw, state.vx, state.vy, state.yaw_rate) == (5.0, 0.0, 1.0, 0.0, 0.0, 0.0)

    def test_stops_and_never_reverses(self):
        state = simulate(cruising_state(P, 0, 0, 0, 5.0), Inputs(accel_active=True, accel_cmd=-3.5), 6.0)
        assert state.vx == 0.0 and state.accel == 0.0
        x = state.x
        state = simulate(state, Inputs(accel_active=True, accel_cmd=-3.5), 2.0)
        assert state.x == x and state.vx == 0.0

    def test_drives_off_from_rest(self):
        state = simulate(VehicleState(), Inputs(accel_active=True, accel_cmd=1.5), 4.0)
        assert 4.0 < state.vx < 6.0 and state.x > 5.0


class TestSteering:
    def test_eps_torque_sets_a_rate_and_holds_a_lateral_acceleration(self):
        state = step(P, cruising_state(P, 0, 0, 0, 25.0), Inputs(eps_torque=1.0, accel_active=True), 0.1)
        assert state.steer_rate > 0.0
        state = simulate(cruising_state(P, 0, 0, 0, 25.0), Inputs(eps_torque=0.5, accel_active=True), 6.0)
        assert abs(state.steer_rate) < 1e-3
        centring = state.steer_angle / P.eps_center_angle
        assert state.lat_accel == pytest.approx((0.5 - centring) * P.eps_lat_accel_full, rel=0.02)
        # and it is (close to) linear in the torque, as the torque controller assumes
        half = simulate(cruising_state(P, 0, 0, 0, 25.0), Inputs(eps_torque=0.25, accel_active=True), 6.0)
        assert half.lat_accel == pytest.approx(0.5 * state.lat_accel, rel=0.05)

    def test_friction_holds_torque_below_it_and_takes_its_share_of_more(self):
        rough = replace(P, eps_friction=0.1)
        start = cruising_state(P, 0, 0, 0, 25.0)
        held = simulate(start, Inputs(eps_torque=0.08, accel_active=True), 1.0, rough)
        assert held.steer_angle == 0.0 and held.lat_accel == pytest.approx(0.0, abs=1e-9)
        # above it the wheel moves, and stops (held by the friction) short of where the torque would hold it
        # without friction: past where the torque left over (0.2) would, as the rate's lag carries it on a little
        state = simulate(start, Inputs(eps_torque=0.3, accel_active=True), 6.0, rough)
        low, high = (simulate(start, Inputs(eps_torque=u, accel_active=True), 6.0).lat_accel for u in (0.2, 0.3))
        assert low < state.lat_accel < high and abs(state.steer_rate) < 1e-9
        assert simulate(start, Inputs(eps_torque=0.3, accel_active=True), 6.0, rough, step_python).lat_accel == \
            pytest.approx(state.lat_accel, abs=1e-9)

    def test_rate_is_limited(self):
        state = simulate(VehicleState(), Inputs(eps_torque=1.0, driver_torque=10.0), 0.5)
        assert state.steer_rate == pytest.approx(P.max_steer_rate, rel=1e-3)

    def test_driver_torque_overrides_the_motor(self):
        inputs = Inputs(eps_torque=0.6, driver_torque=-2.0 * P.driver_torque_full, accel_active=True)
        state = simulate(cruising_state(P, 0, 0, 0, 20.0), inputs, 3.0)
        assert state.steer_angle < 0.0 and state.yaw_rate < 0.0

    def test_angle_limit(self):
        state = simulate(VehicleState(), Inputs(eps_torque=1.0, driver_torque=20.0), 5.0)
        assert state.steer_angle == P.max_steer_angle and state.steer_rate == 0.0
        state = simulate(state, Inputs(eps_torque=-1.0, driver_torque=-20.0), 5.0)
        assert state.steer_angle == -P.max_steer_angle

    def test_a_released_wheel_centres_at_standstill(self):
        state = simulate(VehicleState(steer_angle=2.0), Inputs(), 5.0)
        assert abs(state.steer_angle) < 0.05


class TestBadInput:
    @pytest.mark.parametrize("dt", [0.0, -0.01, math.nan, math.inf, 1.5])
    def test_bad_dt_is_refused(self, dt):
        for fn in (step, step_python):
            with pytest.raises(ValueError):
                fn(P, VehicleState(), Inputs(), dt)
        with pytest.raises(ValueError):
            run(P, VehicleState(), [Inputs()], dt)

    def test_non_finite_inputs_count_as_zero(self):
        start = cruising_state(P, 0, 0, 0, 12.0)
        bad = Inputs(eps_torque=math.nan, driver_torque=math.inf, accel_cmd=-math.inf, accel_active=True,
                     gas=math.nan, brake=math.nan, grade=math.nan)
        zero = Inputs(accel_active=True)
        for fn in (step, step_python):
            assert astuple(fn(P, start, bad, DT)) == astuple(fn(P, start, zero, DT))

    def test_given_state_is_not_modified(self):
        start = cruising_state(P, 0, 0, 0, 12.0)
        before = astuple(start)
        step(P, start, Inputs(gas=1.0), DT), step_python(P, start, Inputs(gas=1.0), DT)
        assert astuple(start) == before
