"""The lateral loop's margin (tools/sim/lib/steer_loop.py: controlsd's lane pursuit and torque controller steering the
sim's car through opendbc's torque limits, lane lines seen late and with the model's jitter)."""

import pytest

from tools.sim.lib.steer_loop import run


@pytest.fixture(scope="module")
def nominal():
    return {v: run(1.0, 0.0, v=v) for v in (15.0, 25.0, 32.0)}


class TestMargin:
    @pytest.mark.parametrize("v", [15.0, 25.0, 32.0])
    def test_the_nominal_car_does_not_chatter(self, nominal, v):
        # before: KP 1.0, friction from the error's sign, the plan unfiltered: 0.04-0.05 of full torque above 1 Hz
        r = nominal[v]
        assert r.osc_rms < 0.03 and r.osc_share < 0.02
        assert r.lane_max < 0.15

    @pytest.mark.parametrize("v", [15.0, 25.0, 32.0])
    def test_a_tenth_of_a_second_more_actuator_delay_is_as_smooth(self, nominal, v):
        r = run(1.0, 0.1, v=v)
        assert r.osc_rms < 1.5 * nominal[v].osc_rms
        assert r.lane_max < 0.15

    @pytest.mark.parametrize("v", [15.0, 25.0, 32.0])
    def test_a_car_with_half_the_torque_stays_in_its_lane(self, nominal, v):
        # the feedforward falls short by half until the integrator (or torqued) makes it up
        r = run(0.5, 0.0, v=v)
        assert r.osc_rms < 2.0 * nominal[v].osc_rms
        assert r.lane_max < 0.35

    @pytest.mark.parametrize("v", [15.0, 25.0, 32.0])
    def test_a_car_with_twice_the_torque_stays_smooth(self, nominal, v):
        r = run(2.0, 0.0, v=v)
        assert r.osc_rms < 1.5 * nominal[v].osc_rms
        assert r.lane_max < 0.15


@pytest.fixture(scope="module")
def nominal_learning():
    return run(1.0, 0.0, seconds=180.0, learn=True)


class TestLearning:
    """torqued's estimator and controlsd's use of it, in the loop: the acceptance of issue 22 in lockstep."""

    @pytest.mark.parametrize("gain", [0.5, 2.0])
    def test_learns_the_cars_true_response_within_3_minutes_and_steers_as_smoothly(self, gain, nominal_learning):
        r = run(gain, 0.0, seconds=180.0, learn=True)
        assert r.learnt_after_s is not None and r.learnt_after_s < 180.0
        assert r.learnt_factor == pytest.approx(r.true_factor, rel=0.1)
        # the oscillation the car feels: a car with half the response needs twice the torque for the same motion, so
        # the command's oscillation is compared in lateral acceleration (x the car's factor), and as a share
        n = nominal_learning
        assert r.osc_rms * r.true_factor < 1.5 * n.osc_rms * n.true_factor
        assert r.osc_share < 0.02
        assert r.lane_max < 0.25

    def test_the_nominal_car_is_learnt_as_it_is(self, nominal_learning):
        assert nominal_learning.learnt_factor == pytest.approx(nominal_learning.true_factor, rel=0.1)
