import math

import pytest

from cereal import car
from selfdrive.controls.lib.latcontrol_torque import KI, SAT_ERROR, STEER_MAX, LatControlTorque, TorqueParams
from selfdrive.controls.lib.pid import PIDController
from selfdrive.controls.tests.synth import car_params


def controller(**kw) -> LatControlTorque:
    return LatControlTorque(TorqueParams.from_car_params(car_params(**kw)))


class TestParams:
    def test_reads_torque_tuning_from_car_params(self):
        p = TorqueParams.from_car_params(car_params(steerLimitTimer=0.8))
        assert p.lat_accel_factor == 2.5 and p.friction == pytest.approx(0.1)
        assert p.steer_limit_timer == pytest.approx(0.8)

    def test_opendbc_car_params_work(self):
        from opendbc.car.toyota.interface import CarInterface
        CP = CarInterface.get_non_essential_params("TOYOTA_COROLLA_TSS2")
        assert TorqueParams.from_car_params(CP).lat_accel_factor > 0

    def test_non_torque_tuning_is_rejected(self):
        CP = car_params()
        CP.lateralTuning.init("pid")
        with pytest.raises(ValueError, match="needs 'torque'"):
            TorqueParams.from_car_params(CP)

    @pytest.mark.parametrize("factor", [0.0, -1.0, math.nan, math.inf])
    def test_bad_lat_accel_factor_is_rejected(self, factor):
        CP = car_params()
        CP.lateralTuning.torque.latAccelFactor = factor
        with pytest.raises(ValueError, match="latAccelFactor"):
            TorqueParams.from_car_params(CP)

    def test_non_finite_friction_is_rejected(self):
        CP = car_params()
        CP.lateralTuning.torque.friction = math.nan
        with pytest.raises(ValueError, match="friction"):
            TorqueParams.from_car_params(CP)


class TestControl:
    def test_inactive_outputs_zero_and_resets(self):
        c = controller()
        for _ in range(50):
            c.update(True, 20.0, 0.0, 0.002)
        assert c.pid.i != 0.0
        out = c.update(False, 20.0, 0.0, 0.002)
        assert out.torque == 0.0 and c.pid.i == 0.0 and not out.saturated

    def test_feedforward_alone_when_on_target(self):
        c = controller()
        out = c.update(True, 20.0, 0.001, 0.001)
        c.update(True, 20.0, 0.001, 0.001)  # second cycle: no jerk term
        out = c.update(True, 20.0, 0.001, 0.001)
        assert out.error == 0.0
        assert out.torque == pytest.approx(0.001 * 20.0 ** 2 / 2.5)

    def test_error_pushes_toward_target_with_friction(self):
        c = controller()
        out = c.update(True, 20.0, 0.0, 0.0005)
        assert out.torque > 0.0005 * 400 / 2.5  # more than feedforward: P and friction act with the error
        out = controller().update(True, 20.0, 0.0005, 0.0)
        assert out.torque < 0

    def test_friction_follows_the_plans_jerk_not_the_error(self):
        # an error's sign flips with every wobble of the car: friction driven by it acted as a relay, +50% gain for
        # small errors, and the loop chattered at ~3 Hz. The plan's jerk says where the steering must move.
        c = controller()  # friction 0.1 m/s²
        c.update(True, 20.0, 0.0, 0.0)
        out = c.update(True, 20.0, 0.0003, 0.0)  # the car is off by 0.12 m/s², the plan does not move
        assert out.f == 0.0
        out = c.update(True, 20.0, 0.0, 0.0001)  # the plan turns left at 4 m/s³: full friction to the left
        assert out.f == pytest.approx(0.04 + 0.1)
        out = c.update(True, 20.0, 0.0, 0.0)  # and back at 4 m/s³: friction to the right
        assert out.f == pytest.approx(-0.1)

    def test_learned_params_move_the_feedforward_and_limits_not_the_integrator(self):
        c = controller()  # 2.5 m/s² per unit torque
        for _ in range(100):
            c.update(True, 20.0, 0.0, 0.0005)
        i = c.pid.i
        c.update_params(TorqueParams(5.0, 0.0, 0.1))
        out = c.update(True, 20.0, 0.0, 0.0005)
        assert c.pid.i == pytest.approx(i + KI * out.error * 0.01)
        assert out.torque == pytest.approx((out.p + out.i + 0.2) / 5.0)
        assert c.pid.pos_limit == 5.0 * STEER_MAX and c.pid.neg_limit == -5.0 * STEER_MAX

    def test_offset_is_compensated(self):
        CP = car_params()
        CP.lateralTuning.torque.latAccelOffset = 0.25
        c = LatControlTorque(TorqueParams.from_car_params(CP))
        assert c.torque_from_lat_accel(0.25) == 0.0
        assert c.update(True, 20.0, 0.0, 0.0).torque == pytest.approx(-0.1)

    def test_integrator_removes_steady_error(self):
        c = controller()
        c.update(True, 20.0, 0.0, 0.0005)
        out1 = c.update(True, 20.0, 0.0, 0.0005)  # the first cycle's step in the plan also asks for friction
        for _ in range(98):
            out = c.update(True, 20.0, 0.0, 0.0005)
        assert out.i == pytest.approx(KI * out.error * 1.0, rel=0.05) and out.torque > out1.torque

    def test_integrator_holds_while_driver_steers_or_slow(self):
        c = controller()
        for _ in range(50):
            c.update(True, 20.0, 0.0, 0.0005, steering_pressed=True)
        assert c.pid.i == 0.0
        for _ in range(50):
            c.update(True, 2.0, 0.0, 0.01)
        assert c.pid.i == 0.0

    def test_torque_is_limited_and_does_not_wind_up(self):
        c = controller()
        for _ in range(300):
            out = c.update(True, 25.0, 0.0, 0.01)  # 6.25 m/s² asked of a 2.5 m/s² car
        assert out.torque == STEER_MAX
        i_hi = c.pid.i
        for _ in range(300):
            c.update(True, 25.0, 0.0, 0.01)
        assert c.pid.i == i_hi
        # asking for less unwinds immediately: the integrator never grew past the limit
        assert c.update(True, 25.0, 0.0, 0.0).torque < STEER_MAX


class TestSaturation:
    @pytest.mark.parametrize("timer", [0.5, 1.0])
    def test_saturated_only_after_steer_limit_timer(self, timer):
        c = controller(steerLimitTimer=timer)
        flags = [c.update(True, 25.0, 0.0, 0.01).saturated for _ in range(int(timer / 0.01) + 20)]
        first = flags.index(True)
        assert abs(first * 0.01 - timer) < 0.03

    def test_saturated_but_on_target_is_no_problem(self):
        c = controller()
        # the car already turns as much as wanted though the torque is at its limit (e.g. a banked road)
        for _ in range(300):
            out = c.update(True, 25.0, 0.01 - SAT_ERROR / 25.0 ** 2 / 2, 0.01)
        assert not out.saturated

    def test_driver_override_is_not_saturation(self):
        c = controller()
        for _ in range(300):
            out = c.update(True, 25.0, 0.0, 0.01, steering_pressed=True)
        assert not out.saturated


class TestPid:
    def test_gain_schedule_interpolates(self):
        pid = PIDController(([0.0, 20.0], [1.0, 3.0]), 0.0)
        assert pid.gains(10.0) == (2.0, 0.0)

    @pytest.mark.parametrize("bad", [([], []), ([0.0, 1.0], [1.0]), ([0.0], [math.nan])])
    def test_bad_gain_tables_are_rejected(self, bad):
        with pytest.raises(ValueError):
            PIDController(bad, 0.0)

    def test_schema_struct_is_the_shared_one(self):
        assert car.CarParams.schema.node.id == car_params().schema.node.id
