"""Each brand's steering, through opendbc's mode for a representative platform (tests/brands.py): once the
car's cruise engages, steering up to opendbc's CarControllerParams limit leaves, one unit beyond is
refused, and nothing steers once the car's cruise is off. Frames come from opendbc's CANPacker and DBCs."""

import pytest

from selfdrive.car.safety.tests.brands import BRANDS, Brand, BrandCar


def ramp_to(car: BrandCar, target: int) -> list[tuple[int, str]]:
    """Steers from 0 to `target` at the carcontroller's rate and period; (torque, verdict) of every frame."""
    lim = car.limits
    torque, out = 0, []
    while torque != target:
        torque = min(target, torque + lim.STEER_DELTA_UP) if target > 0 else max(target, torque - lim.STEER_DELTA_UP)
        for _ in range(lim.STEER_STEP):
            car.step()
        out.append((torque, car.steer(torque)))
    for _ in range(lim.STEER_STEP):
        car.step()
    return out


@pytest.mark.parametrize("brand", BRANDS, ids=[b.name for b in BRANDS])
class TestBrandSteering:
    def test_cruise_engages_and_tracked_messages_are_valid(self, brand: Brand):
        car = BrandCar(brand)
        car.step()
        assert not car.safety.controls_allowed
        car.engage()
        assert car.safety.controls_allowed
        if brand.engaged is not None:  # built with opendbc's packer: opendbc's checks take every frame
            assert car.rx_refused == {}
            assert car.safety.car_state["cruise_engaged"]

    def test_steering_within_the_limit_leaves_and_beyond_is_refused(self, brand: Brand):
        car = BrandCar(brand)
        car.engage()
        if not brand.ramp:  # no torque limit in the mode: the EPS limits itself
            assert car.steer(car.limits.STEER_MAX if hasattr(car.limits, "STEER_MAX") else 100) == "OK"
            return
        steer_max = car.limits.STEER_MAX
        for sign in (1, -1):
            verdicts = ramp_to(car, sign * steer_max)
            assert {v for _, v in verdicts} == {"OK"}, verdicts[-3:]
            assert car.steer(sign * (steer_max + 1)) == "REFUSED"
            assert car.safety.controls_allowed  # a refused frame is dropped, the car stays engaged
            car.steer(0)
            for _ in range(30):
                car.step()

    def test_a_jump_past_the_rate_limit_is_refused(self, brand: Brand):
        if not brand.ramp:
            pytest.skip("no torque limits in this mode")
        car = BrandCar(brand)
        car.engage()
        assert car.steer(car.limits.STEER_MAX) == "REFUSED"
        if brand.rate_exact:  # opendbc's rate limit is the carcontroller's: one unit more is refused
            assert car.steer(car.limits.STEER_DELTA_UP + 1) == "REFUSED"
        assert car.steer(car.limits.STEER_DELTA_UP) == "OK"

    def test_nothing_steers_when_the_car_disengages(self, brand: Brand):
        car = BrandCar(brand)
        car.engage()
        car.steer(0)
        car.step()
        assert car.steer(car.limits.STEER_DELTA_UP if brand.ramp else 100) == "OK"
        car.disengage()
        assert not car.safety.controls_allowed
        assert car.steer(1) == "NOT_ALLOWED"
        assert car.steer(-1) == "NOT_ALLOWED"

    def test_nothing_steers_without_controlsd(self, brand: Brand):
        car = BrandCar(brand)
        car.engage()
        car.now += 1_000_001  # no heartbeat for just over a second
        assert car.steer(1) == "HEARTBEAT"
        assert not car.safety.controls_allowed
