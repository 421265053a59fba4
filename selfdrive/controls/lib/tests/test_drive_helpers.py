import math

import numpy as np
import pytest

from selfdrive.controls.lib.drive_helpers import (
    LANE_LOOKAHEAD_T,
    LAT_PROCESS_DELAY,
    MAX_CURVATURE,
    MAX_LATERAL_ACCEL,
    MAX_LATERAL_JERK,
    MIN_LOOKAHEAD_T,
    LaneView,
    clip_curvature,
    curvature_from_steering,
    desired_curvature,
    finite_or,
    lag_compensated_curvature,
    lane_centre_curvature,
    lane_weight,
    path_geometry,
    slip_factor,
    steering_from_curvature,
)
from selfdrive.controls.tests.synth import MODEL_T, arc


class TestPathGeometry:
    @pytest.mark.parametrize("kappa", [0.0, 0.002, -0.01, 0.05])
    def test_constant_arc_has_constant_curvature(self, kappa):
        x, y = arc(15.0, kappa)
        s, psi, k = path_geometry(x, y)
        # chords are a little shorter than the arcs they span: within 2% even for 20 m steps in a tight curve
        np.testing.assert_allclose(k, kappa, rtol=0.02, atol=1e-6)
        np.testing.assert_allclose(psi, kappa * s, rtol=0.02, atol=1e-4)

    @pytest.mark.parametrize("x, y", [
        ([0.0, 1.0], [0.0, 0.0]),                       # too short
        ([0.0, 1.0, math.nan], [0.0, 0.0, 0.0]),        # non-finite
        ([0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]),   # standing still: no direction
        ([0.0, 1.0, 2.0], [0.0, 0.0]),                  # mismatched lengths
    ])
    def test_unusable_paths_are_rejected(self, x, y):
        assert path_geometry(np.array(x), np.array(y)) is None
        assert lag_compensated_curvature(np.array(x), np.array(y), 20.0, 0.2) is None


class TestLagCompensation:
    def test_constant_curve_needs_its_own_curvature(self):
        x, y = arc(20.0, 0.01)
        assert lag_compensated_curvature(x, y, 20.0, 0.3) == pytest.approx(0.01, abs=1e-5)

    def test_curve_ahead_is_anticipated(self):
        # straight for 15 m, then a 0.02 1/m curve: at 20 m/s we look 10 m (the 0.5 s floor)... then 12 m ahead
        s = np.linspace(0, 100, 201)
        kappa = np.where(s > 15.0, 0.02, 0.0)
        psi = np.concatenate(([0.0], np.cumsum(kappa[1:] * np.diff(s))))
        x = np.concatenate(([0.0], np.cumsum(np.cos(psi[1:]) * np.diff(s))))
        y = np.concatenate(([0.0], np.cumsum(np.sin(psi[1:]) * np.diff(s))))
        short = lag_compensated_curvature(x, y, 20.0, 0.3)
        long = lag_compensated_curvature(x, y, 20.0, 1.0)
        assert short == pytest.approx(0.0, abs=1e-3)
        assert 0.0 < long < 0.03

    def test_never_aims_nearer_than_the_plans_first_sample(self):
        # a short actuator delay still aims at the heading MIN_LOOKAHEAD_T ahead
        x = np.linspace(0.0, 100.0, 21) * np.cos(0.02)
        y = np.linspace(0.0, 100.0, 21) * np.sin(0.02)
        expected = 2 * 0.02 / (20.0 * MIN_LOOKAHEAD_T)
        assert lag_compensated_curvature(x, y, 20.0, 0.1) == pytest.approx(expected, rel=1e-3)

    @pytest.mark.parametrize("angle", [0.02, -0.05])
    def test_path_leaving_at_an_angle_is_a_turn_towards_it(self, angle):
        # a straight path that heads off at `angle` from the car's heading (the car is turned from its lane):
        # to be on its heading after d = v * delay the car must turn, on average angle / d
        x = np.linspace(0.0, 100.0, 21) * np.cos(angle)
        y = np.linspace(0.0, 100.0, 21) * np.sin(angle)
        assert lag_compensated_curvature(x, y, 20.0, 0.6) == pytest.approx(2 * angle / 12.0, rel=1e-3)

    def test_path_back_to_the_lane_centre_steers_towards_it(self):
        # the car 0.5 m right of its lane's centre, the path converging onto it: steer left, not straight on
        x = np.linspace(0.0, 150.0, 13)
        y = 0.5 * (1.0 - np.exp(-x / 25.0))
        assert lag_compensated_curvature(x, y, 25.0, 0.3) > 0.001

    def test_desired_curvature_falls_back_to_the_model_and_is_finite(self):
        assert desired_curvature(np.zeros(3), np.zeros(3), 0.004, 20.0, 0.1) == 0.004
        assert desired_curvature(np.zeros(3), np.zeros(3), math.nan, 20.0, 0.1) == 0.0
        x, y = arc(20.0, -0.005)
        assert desired_curvature(x, y, 0.0, math.inf, math.nan) == pytest.approx(-0.005, abs=1e-4)
        assert LAT_PROCESS_DELAY > 0 and len(MODEL_T) == 33


X_LINES = np.array([5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0])


def lanes_on(curvature: float, offset: float = 0.0, heading: float = 0.0, width: float = 3.7, prob: float = 0.99,
             std: float = 0.1) -> LaneView:
    """The ego lines as a car sees them `offset` m left of the centre of a lane of constant `curvature`, its
    heading `heading` rad left of the lane's (small angles)."""
    centre = 0.5 * curvature * X_LINES ** 2 - offset - heading * X_LINES
    return LaneView(X_LINES, centre + width / 2, centre - width / 2, (prob, prob), (std, std))


class TestLaneCentring:
    @pytest.mark.parametrize("kappa", [0.0, 0.002, -0.004])
    def test_on_the_centre_of_a_curve_it_follows_the_curve(self, kappa):
        ln = lanes_on(kappa)
        # (a parabola for the circle, sampled 10 m apart: within 5%)
        assert lane_centre_curvature(ln.x, ln.left, ln.right, 25.0) == pytest.approx(kappa, rel=0.05, abs=1e-6)

    @pytest.mark.parametrize("offset", [0.3, -0.5])
    def test_off_centre_it_steers_back(self, offset):
        ln = lanes_on(0.0, offset)
        k = lane_centre_curvature(ln.x, ln.left, ln.right, 25.0)
        d = 25.0 * LANE_LOOKAHEAD_T
        assert k == pytest.approx(-2.0 * offset / d ** 2, rel=0.01)  # towards the centre, by the pursuit law

    def test_heading_away_it_turns_back(self):
        ln = lanes_on(0.0, 0.0, heading=0.02)  # pointing left of the lane: turn right
        assert lane_centre_curvature(ln.x, ln.left, ln.right, 25.0) < -0.001

    def test_the_delay_is_driven_at_todays_curvature_first(self):
        ln = lanes_on(0.0)  # on the centre of a straight lane, but turning left now
        assert lane_centre_curvature(ln.x, ln.left, ln.right, 25.0, 0.0, 0.002) == pytest.approx(0.0, abs=1e-9)
        # after 0.3 s at 0.002 1/m the car points left and is a little left: the command turns it back right
        assert lane_centre_curvature(ln.x, ln.left, ln.right, 25.0, 0.3, 0.002) < -0.0005

    @pytest.mark.parametrize("kappa", [0.002, -0.004])
    def test_on_a_curve_driven_at_its_curvature_the_prediction_changes_nothing(self, kappa):
        ln = lanes_on(kappa)
        k = lane_centre_curvature(ln.x, ln.left, ln.right, 25.0, 0.3, kappa)
        # the aim point (25 m) falls between samples 10 m apart, where straight-line interpolation of the bending
        # lines puts it a few cm outside: within 10%
        assert k == pytest.approx(kappa, rel=0.10, abs=1e-6)

    def test_aim_point_stays_within_the_lines_samples(self):
        ln = lanes_on(0.0, 0.5)
        # standing still the aim is the nearest sample (5 m), at 100 m/s the farthest (60 m)
        assert lane_centre_curvature(ln.x, ln.left, ln.right, 0.0) == pytest.approx(-2 * 0.5 / (25 + 0.25), rel=1e-6)
        assert lane_centre_curvature(ln.x, ln.left, ln.right, 100.0) == pytest.approx(-2 * 0.5 / (3600 + 0.25),
                                                                                   rel=1e-6)

    @pytest.mark.parametrize("bad", ["nan", "short", "unsorted", "too near"])
    def test_unusable_lines_are_rejected(self, bad):
        ln = lanes_on(0.0)
        x, left = ln.x.copy(), ln.left.copy()
        if bad == "nan":
            left[3] = math.nan
        elif bad == "short":
            left = left[:4]
        elif bad == "too near":
            x = x / 20.0  # all within 3 m
        else:
            x[2], x[3] = x[3], x[2]
        assert lane_centre_curvature(x, left, ln.right, 25.0) is None

    def test_weight_follows_probability_and_std(self):
        assert lane_weight((0.99, 0.95), (0.1, 0.2)) == 1.0
        assert lane_weight((0.99, 0.4), (0.1, 0.1)) == 0.0      # one line unseen: the path steers
        assert lane_weight((0.99, 0.99), (0.1, 0.7)) == 0.0     # one line unsure: the path steers
        assert 0.0 < lane_weight((0.65, 0.99), (0.1, 0.1)) < 1.0
        assert lane_weight((math.nan, 0.99), (0.1, 0.1)) == 0.0
        assert lane_weight((0.99, 0.99), (math.nan, 0.1)) == 0.0

    def test_desired_curvature_prefers_the_lines_and_falls_back_to_the_path(self):
        x, y = arc(25.0, 0.0)  # the model's path straight on, while the lines say the car is 0.5 m left
        on_lines = desired_curvature(x, y, 0.0, 25.0, 0.1, lanes=lanes_on(0.0, 0.5))
        assert on_lines < -0.0005
        assert desired_curvature(x, y, 0.0, 25.0, 0.1, lanes=lanes_on(0.0, 0.5, prob=0.3)) == pytest.approx(0.0)
        assert desired_curvature(x, y, 0.0, 25.0, 0.1, lanes=None) == pytest.approx(0.0)
        half = desired_curvature(x, y, 0.0, 25.0, 0.1, lanes=lanes_on(0.0, 0.5, prob=0.65))
        assert on_lines < half < 0.0


class TestClipCurvature:
    def test_rate_limited_by_lateral_jerk(self):
        v, dt = 20.0, 0.05
        out, limited = clip_curvature(v, 0.0, 0.01, dt)
        assert limited and out == pytest.approx(MAX_LATERAL_JERK / v ** 2 * dt)

    def test_bounded_by_lateral_accel(self):
        v = 30.0
        prev = MAX_LATERAL_ACCEL / v ** 2
        out, limited = clip_curvature(v, prev, 1.0, 1.0)
        assert limited and out == pytest.approx(prev)

    def test_small_change_passes(self):
        assert clip_curvature(10.0, 0.001, 0.0011, 0.05) == (0.0011, False)

    def test_low_speed_never_divides_by_zero_and_caps(self):
        out, _ = clip_curvature(0.0, 0.0, 10.0, 10.0)
        assert out == MAX_CURVATURE

    @pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
    def test_non_finite_input_holds_previous(self, bad):
        assert clip_curvature(20.0, 0.001, bad, 0.05)[0] == 0.001
        assert math.isfinite(clip_curvature(20.0, bad, 0.001, 0.05)[0])


class TestSteering:
    @pytest.mark.parametrize("angle", [-90.0, -5.0, 0.0, 12.5, 200.0])
    def test_round_trip(self, angle):
        k = curvature_from_steering(angle, 15.0, 2.7)
        assert steering_from_curvature(k, 15.0, 2.7) == pytest.approx(angle)
        assert math.copysign(1, k) == math.copysign(1, angle) or angle == 0

    @pytest.mark.parametrize("v", [0.0, 10.0, 30.0])
    def test_round_trip_with_slip(self, v):
        k = curvature_from_steering(7.0, 16.88, 2.65, v, -0.0011)
        assert steering_from_curvature(k, 16.88, 2.65, v, -0.0011) == pytest.approx(7.0)

    def test_an_understeering_car_turns_less_at_speed(self):
        # opendbc's TOYOTA_RAV4: 1792 kg, 2.65 m, front axle 1.166 m ahead of the CG, tyres 121600 / 151034 N/rad
        from opendbc.car.structs import CarParams
        CP = CarParams(mass=1791.6, wheelbase=2.65, centerToFront=1.166, tireStiffnessFront=121600.2,
                       tireStiffnessRear=151034.0)
        slip = slip_factor(CP)
        assert slip == pytest.approx(-0.001144, rel=1e-3)
        kinematic = curvature_from_steering(5.0, 16.88, 2.65)
        assert curvature_from_steering(5.0, 16.88, 2.65, 0.0, slip) == kinematic
        assert curvature_from_steering(5.0, 16.88, 2.65, 25.0, slip) == pytest.approx(0.583 * kinematic, rel=1e-2)

    def test_slip_factor_is_zero_without_tyres(self):
        from opendbc.car.structs import CarParams
        assert slip_factor(CarParams(mass=1500.0, wheelbase=2.7, centerToFront=1.2)) == 0.0
        assert slip_factor(object()) == 0.0

    def test_finite_or(self):
        assert finite_or("x", 1.0) == 1.0 and finite_or(None, 2.0) == 2.0 and finite_or(3, 0.0) == 3.0
