"""Toyota rx hook: what the car's own frames do to controls-allowed and the tracked state."""

import pytest

from selfdrive.car.safety import Safety, SafetyMode, toyota_param
from selfdrive.car.safety.tests.safety_model import with_checksum
from selfdrive.car.safety.tests.toyota_frames import (
    BRAKE_ALT,
    BRAKE_STD,
    PCM_CRUISE,
    TORQUE_SENSOR,
    WHEEL_SPEEDS,
    Car,
    brake,
    pcm_cruise,
    torque_sensor,
    wheel_speeds,
)

TRACKED = [PCM_CRUISE, TORQUE_SENSOR, WHEEL_SPEEDS, BRAKE_ALT]


class TestEngagement:
    def test_rising_edge_allows_falling_edge_disallows(self):
        car = Car()
        car.car_frames()
        assert not car.safety.controls_allowed
        car.engage()
        car.cruise = False
        car.advance(10_000)
        assert not car.safety.controls_allowed

    def test_cruise_already_on_at_start_needs_a_new_edge(self):
        car = Car()
        car.cruise = True
        car.advance(100_000)  # PCM_CRUISE came first, before the other messages: its edge was not usable
        assert car.safety.car_state["cruise_engaged"] and not car.safety.controls_allowed
        car.engage()

    @pytest.mark.parametrize("missing", TRACKED)
    def test_every_tracked_message_must_be_alive_to_engage(self, missing):
        car = Car()
        car.car_frames(skip=missing)
        car.cruise = True
        car.advance(20_000, skip=missing)
        assert not car.safety.controls_allowed

    @pytest.mark.parametrize("stale", TRACKED)
    @pytest.mark.parametrize("age_us,allowed", [(250_000, True), (250_001, False)])
    def test_stale_message_disallows(self, stale, age_us, allowed):
        car = Car()
        car.engage()
        car.advance(age_us, skip=stale)
        # frames with the message itself at the end would refresh it: check with a frame from elsewhere
        car.rx(0x123, b"")
        assert car.safety.controls_allowed == allowed

    def test_stale_message_blocks_engagement_at_the_edge(self):
        car = Car()
        car.car_frames()
        car.advance(250_001, skip=WHEEL_SPEEDS)
        car.cruise = True
        car.car_frames(skip=WHEEL_SPEEDS)
        assert not car.safety.controls_allowed

    def test_stale_check_also_runs_on_tx(self):
        car = Car()
        car.engage()
        car.advance(250_001, skip=WHEEL_SPEEDS)
        assert car.safety.tx_verdict(0x7FF, 0, b"", car.now) == "ADDRESS"
        assert not car.safety.controls_allowed

    def test_rx_on_other_buses_is_not_the_car(self):
        car = Car()
        car.car_frames()
        for bus in (1, 2):
            assert car.rx(PCM_CRUISE, pcm_cruise(True), bus=bus)
        assert not car.safety.controls_allowed and not car.safety.car_state["cruise_engaged"]


class TestBrakeAndGas:
    @pytest.mark.parametrize("param,addr,other", [(toyota_param(73, alt_brake=True), BRAKE_ALT, BRAKE_STD),
                                                  (toyota_param(73), BRAKE_STD, BRAKE_ALT)])
    def test_brake_disallows(self, param, addr, other):
        car = Car(param)
        car.engage()
        car.rx(other, brake(True, other))  # the other brake message is not this car's: ignored
        assert car.safety.controls_allowed and not car.safety.car_state["brake_pressed"]
        car.rx(addr, brake(True, addr))
        assert not car.safety.controls_allowed and car.safety.car_state["brake_pressed"]
        car.rx(addr, brake(False, addr))
        assert not car.safety.controls_allowed

    def test_no_engagement_while_braking(self):
        car = Car()
        car.car_frames()
        car.rx(BRAKE_ALT, brake(True))
        car.cruise = True
        car.safety.rx(PCM_CRUISE, 0, pcm_cruise(True), car.now)
        assert not car.safety.controls_allowed

    def test_gas_tracked_but_does_not_disengage(self):
        car = Car()
        car.engage()
        car.gas_released = False
        car.advance(10_000)
        assert car.safety.car_state["gas_pressed"] and car.safety.controls_allowed


class TestValidity:
    @pytest.mark.parametrize("addr", [PCM_CRUISE, TORQUE_SENSOR])
    def test_bad_checksum_is_ignored_and_counted(self, addr):
        car = Car()
        car.car_frames()
        good = pcm_cruise(True) if addr == PCM_CRUISE else torque_sensor(300, 400)
        bad = good[:-1] + bytes([(good[-1] + 1) % 256])
        assert not car.rx(addr, bad)
        assert car.safety.counters["rx_refused"] == {"CHECKSUM": 1}
        state = car.safety.car_state
        assert not state["cruise_engaged"] and state["driver_torque"] == 0 and not car.safety.controls_allowed
        assert car.rx(addr, good)

    @pytest.mark.parametrize("addr", TRACKED)
    @pytest.mark.parametrize("length", [0, 7])
    def test_bad_length_is_ignored_and_counted(self, addr, length):
        car = Car()
        car.car_frames()
        car.advance(200_000, skip=addr)
        assert not car.rx(addr, bytes(length))
        assert car.safety.counters["rx_refused"] == {"LENGTH": 1}
        car.tick(50_001)
        car.rx(0x123, b"")
        car.cruise = True
        car.car_frames(skip=addr)
        assert not car.safety.controls_allowed  # the bad frame did not refresh it

    @pytest.mark.parametrize("addr,data", [(WHEEL_SPEEDS, wheel_speeds((1, 2, 3, 4))), (BRAKE_ALT, bytes(7) + b"\xab")])
    def test_messages_without_checksum_accept_any_last_byte(self, addr, data):
        s = Safety(SafetyMode.TOYOTA, toyota_param(73, alt_brake=True))
        assert s.rx(addr, 0, data, 0)


class TestTrackedState:
    def test_speed(self):
        car = Car()
        car.rx(WHEEL_SPEEDS, wheel_speeds((6767 + 3600, 6767 + 3601, 6767 + 3599, 6767 + 3603)))
        assert car.safety.car_state["speed"] == pytest.approx(10.0)  # 36.00 km/h
        car.rx(WHEEL_SPEEDS, wheel_speeds((6767 + 3, 6767 + 3, 6767 + 3, 6767 + 2)))
        assert car.safety.car_state["speed"] == pytest.approx(0.02 / 3.6)  # the mean truncates to 0.02 km/h

    @pytest.mark.parametrize("scale,raw,expected", [(73, 1000, 730), (73, -101, -73), (73, 101, 73), (100, -5, -5),
                                                    (255, 32767, 83555), (1, -99, 0)])
    def test_eps_torque_scaled_and_truncated(self, scale, raw, expected):
        car = Car(toyota_param(scale, alt_brake=True))
        car.rx(TORQUE_SENSOR, torque_sensor(-1234, raw))
        state = car.safety.car_state
        assert state["eps_torque"] == expected and state["driver_torque"] == -1234

    def test_gas_released_bit(self):
        car = Car()
        car.rx(PCM_CRUISE, pcm_cruise(False, gas_released=False))
        assert car.safety.car_state["gas_pressed"]
        car.rx(PCM_CRUISE, with_checksum(PCM_CRUISE, b"\x10" + bytes(7)))
        assert not car.safety.car_state["gas_pressed"]
