"""Each brand's steering, through opendbc's mode for a representative platform (tests/brands.py): once the
car's cruise engages, steering within opendbc's CarControllerParams limits leaves, beyond is refused, and
nothing steers once the car's cruise is off or controlsd is silent. Frames come from opendbc's CANPacker and
DBCs. Torque brands ramp to STEER_MAX; angle brands follow their measured angle at the carcontroller's rate."""

import math

import pytest

from selfdrive.car.safety.tests.brands import ANGLE_BRANDS, BRANDS, AngleBrand, Brand, BrandCar


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


def steer_max(car: BrandCar) -> int:
    return car.brand.steer_max(car.limits) if car.brand.steer_max is not None else car.limits.STEER_MAX


@pytest.mark.parametrize("brand", BRANDS, ids=[b.name for b in BRANDS])
class TestBrandSteering:
    def test_cruise_engages_and_tracked_messages_are_valid(self, brand: Brand):
        car = BrandCar(brand)
        car.step()
        assert not car.safety.controls_allowed
        car.engage()
        assert car.safety.controls_allowed
        assert car.rx_refused == {}  # checksums and counters right: opendbc's checks take every frame
        if brand.engaged:  # the comma body has no cruise: its motor board's frames are the engagement
            assert car.safety.car_state["cruise_engaged"]

    def test_steering_within_the_limit_leaves_and_beyond_is_refused(self, brand: Brand):
        car = BrandCar(brand)
        car.engage()
        if not brand.ramp:  # no torque limit in the mode: the EPS limits itself
            assert car.steer(car.limits.STEER_MAX if hasattr(car.limits, "STEER_MAX") else 100) == "OK"
            return
        limit = steer_max(car)
        for sign in (1, -1):
            verdicts = ramp_to(car, sign * limit)
            assert {v for _, v in verdicts} == {"OK"}, verdicts[-3:]
            assert car.steer(sign * (limit + 1)) == "REFUSED"
            assert car.safety.controls_allowed  # a refused frame is dropped, the car stays engaged
            car.steer(0)
            for _ in range(30):
                car.step()

    def test_a_jump_past_the_rate_limit_is_refused(self, brand: Brand):
        if not brand.ramp:
            pytest.skip("no torque limits in this mode")
        car = BrandCar(brand)
        car.engage()
        assert car.steer(steer_max(car)) == "REFUSED"
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
        # first the frame: the layer's clock (and the 1 Hz timeout check that ends the body's engagement) moves
        # with rx/tx calls, and nothing else is on the body's bus
        assert car.steer(1) == "NOT_ALLOWED"
        assert not car.safety.controls_allowed
        assert car.steer(-1) == "NOT_ALLOWED"

    def test_nothing_steers_without_controlsd(self, brand: Brand):
        car = BrandCar(brand)
        car.engage()
        car.now += 1_000_001  # no heartbeat for just over a second
        assert car.steer(1) == "HEARTBEAT"
        assert not car.safety.controls_allowed


def angle_steps(car: BrandCar) -> tuple[int, int]:
    """(the carcontroller's step per frame at the car's speed, the .h's rate at that speed), in CAN units, rounded
    down; lateral.h allows int(rate * angle_deg_to_can + 1) units a frame: the rate + 1 unit."""
    carcontroller, mode = car.brand.rates(car)
    return math.floor(carcontroller * car.brand.scale), math.floor(mode * car.brand.scale)


def follow_to(car: BrandCar, target: int) -> list[tuple[int, str]]:
    """Steers from the measured angle to `target` at the carcontroller's rate and period, the EPS following each
    command that leaves; (angle, verdict) of every frame."""
    step, out = angle_steps(car)[0], []
    assert step > 0
    angle = car.eps_torque
    while angle != target:
        angle = min(target, angle + step) if target > angle else max(target, angle - step)
        for _ in range(car.brand.steer_step):
            car.step()
        out.append((angle, car.steer(angle, True)))
    car.step()
    return out


def engaged_at_speed(brand: AngleBrand) -> BrandCar:
    car = BrandCar(brand)
    car.engage(10)  # the speed samples (opendbc keeps 6) all at the car's speed
    assert car.safety.controls_allowed
    assert car.safety.car_state["speed"] == pytest.approx(brand.speed, abs=0.01)
    return car


@pytest.mark.parametrize("brand", ANGLE_BRANDS, ids=[b.name for b in ANGLE_BRANDS])
class TestAngleSteering:
    def test_cruise_engages_and_tracked_messages_are_valid(self, brand: AngleBrand):
        car = BrandCar(brand)
        car.step()
        assert not car.safety.controls_allowed
        car.engage()
        assert car.safety.controls_allowed
        assert car.rx_refused == {}
        assert car.safety.car_state["cruise_engaged"]

    @pytest.mark.parametrize("sign", (1, -1))
    def test_following_the_angle_at_the_rate_leaves_and_a_jump_is_refused(self, brand: AngleBrand, sign: int):
        car = engaged_at_speed(brand)
        step, rate = angle_steps(car)
        verdicts = follow_to(car, sign * 20 * step)  # 20 frames at the carcontroller's rate
        assert {v for _, v in verdicts} == {"OK"}, verdicts[-3:]
        here = sign * (20 * step + rate + 1)
        assert car.steer(here, True) == "OK"  # lateral.h allows its rate + 1 unit, winding up
        assert car.steer(here + sign * (rate + 2), True) == "REFUSED"  # one unit more
        assert car.safety.controls_allowed  # a refused frame is dropped, the car stays engaged

    def test_a_jump_from_straight_ahead_is_refused(self, brand: AngleBrand):
        car = engaged_at_speed(brand)
        car.step()
        assert car.steer(10 * angle_steps(car)[1] + 2, True) == "REFUSED"  # ten frames' worth at once

    def test_nothing_steers_when_the_car_disengages(self, brand: AngleBrand):
        car = engaged_at_speed(brand)
        step = angle_steps(car)[0]
        assert {v for _, v in follow_to(car, 5 * step)} == {"OK"}
        car.disengage()
        assert not car.safety.controls_allowed
        # what the carcontroller sends when not active: the angle the EPS reports (ford.h: 0)
        inactive = 0 if brand.inactive_zero else brand.sensor_step * round(car.eps_torque / brand.sensor_step)
        assert car.steer(inactive, False) == "OK"
        assert car.steer(car.eps_torque, True) == "NOT_ALLOWED"  # the request alone, at the measured angle
        assert car.steer(car.eps_torque + step, True) == "NOT_ALLOWED"

    def test_nothing_steers_without_controlsd(self, brand: AngleBrand):
        car = engaged_at_speed(brand)
        car.now += 1_000_001  # no heartbeat for just over a second
        assert car.steer(angle_steps(car)[0], True) == "HEARTBEAT"
        assert not car.safety.controls_allowed


def test_a_tracked_frame_opendbc_refuses_is_invalid_and_ends_controls():
    """The frames above all pass opendbc's rx checks; one with its quality flag cleared (checksum and counter
    right) does not: INVALID, and controls end (Ford's speed from BrakeSysFeatures)."""
    car = engaged_at_speed(next(b for b in ANGLE_BRANDS if b.name == "ford"))
    values = {"Veh_V_ActlBrk": 10800, "VehVActlBrk_D_Qf": 0}
    addr, dat = car.frame("BrakeSysFeatures", 0, values)
    assert not car.safety.rx(addr, 0, dat, car.now)
    assert car.safety.last_reason == "INVALID"
    assert not car.safety.controls_allowed
    assert car.safety.counters["rx_refused"] == {"INVALID": 1}
