"""Core rules shared by every mode: frame shape, heartbeat, relay malfunction, counters."""

import pytest

from selfdrive.car.safety import Safety, SafetyMode, toyota_param
from selfdrive.car.safety.tests.toyota_frames import (
    ACC_CONTROL,
    PCM_CRUISE,
    STEERING_LKA,
    Car,
    accel,
    pcm_cruise,
    steer,
)


class TestFrameShape:
    @pytest.mark.parametrize("addr", [-1, 0x2000_0000, 2**40])
    def test_bad_address(self, addr):
        s = Safety(SafetyMode.TOYOTA, toyota_param())
        assert not s.rx(addr, 0, bytes(8), 0)
        assert s.tx_verdict(addr, 0, bytes(8), 0) == "ADDRESS"
        assert s.counters["rx_refused"] == {"ADDRESS": 1}

    @pytest.mark.parametrize("addr", [0, 0x7FF, 0x1FFF_FFFF])
    def test_any_can_id_is_a_frame(self, addr):
        s = Safety(SafetyMode.TOYOTA, toyota_param())
        assert s.rx(addr, 0, bytes(8), 0)
        assert s.counters["rx_refused"] == {}

    @pytest.mark.parametrize("length", [0, 1, 8])
    def test_untracked_frames_of_any_classic_length_pass(self, length):
        s = Safety(SafetyMode.TOYOTA, toyota_param())
        assert s.rx(0x123, 0, bytes(length), 0)

    @pytest.mark.parametrize("length", [9, 12, 64])
    def test_longer_than_classic_can_is_refused(self, length):
        s = Safety(SafetyMode.TOYOTA, toyota_param())
        assert not s.rx(0x123, 0, bytes(length), 0)
        assert s.tx_verdict(STEERING_LKA, 0, bytes(length), 0) == "LENGTH"
        assert s.counters["rx_refused"] == {"LENGTH": 1}

    @pytest.mark.parametrize("bus", [-1, 1, 2, 128, 2**40])
    def test_frames_on_other_buses_are_refused(self, bus):
        car = Car()
        car.engage()
        assert car.safety.tx_verdict(STEERING_LKA, bus, steer(0, False, 1), car.now) == "ADDRESS"
        assert car.rx(STEERING_LKA, steer(0, False), bus=bus)  # the car's LKA elsewhere: no relay problem
        assert not car.safety.relay_malfunction


class TestCounters:
    def test_counts_by_reason(self):
        car = Car()
        car.engage()
        assert car.send_steer(0, request=False) == "OK"
        assert car.send_steer(16) == "RATE"
        assert car.send_steer(0, request=True, counter=car.counter) == "COUNTER"
        assert car.safety.tx_verdict(0x7FF, 0, b"", car.now) == "ADDRESS"
        assert not car.rx(PCM_CRUISE, pcm_cruise(True)[:-1] + b"\x00")
        c = car.safety.counters
        assert c["rx_total"] == 9
        assert c["rx_refused"] == {"CHECKSUM": 1}
        assert c["tx_total"] == 4 and c["tx_allowed"] == 1
        assert c["tx_blocked"] == {"RATE": 1, "COUNTER": 1, "ADDRESS": 1}

    def test_set_mode_resets_counters(self):
        s = Safety(SafetyMode.TOYOTA, toyota_param())
        s.tx(0x1, 0, b"", 0)
        s.rx(0x1, 0, bytes(9), 0)
        assert Safety(SafetyMode.TOYOTA, toyota_param()).counters == {
            "rx_total": 0, "rx_refused": {}, "tx_total": 0, "tx_allowed": 0, "tx_blocked": {}}


class TestHeartbeat:
    def test_no_heartbeat_no_engagement(self):
        car = Car()
        car.car_frames(heartbeat=False)
        car.cruise = True
        car.advance(100_000, heartbeat=False)
        assert car.safety.car_state["cruise_engaged"] and not car.safety.controls_allowed

    @pytest.mark.parametrize("age_us,allowed", [(0, True), (999_999, True), (1_000_000, True), (1_000_001, False)])
    def test_timeout_is_one_second(self, age_us, allowed):
        car = Car()
        car.engage()
        car.advance(age_us, heartbeat=False)  # fresh car frames: only the heartbeat ages
        assert car.safety.tx_verdict(ACC_CONTROL, 0, accel(100), car.now) == ("OK" if allowed else "NOT_ALLOWED")
        assert car.safety.controls_allowed == allowed

    def test_heartbeat_loss_needs_reengagement(self):
        car = Car()
        car.engage()
        car.advance(1_000_000, heartbeat=False)
        assert car.safety.controls_allowed
        car.tick(1)
        car.rx(0x123, b"")  # any call notices the lost heartbeat
        assert not car.safety.controls_allowed
        car.car_frames()  # heartbeat back, cruise still on: no rising edge
        assert not car.safety.controls_allowed
        car.engage()

    def test_clock_going_backwards_disallows(self):
        car = Car()
        car.engage()
        car.now -= 1
        car.rx(0x123, b"")
        assert not car.safety.controls_allowed


class TestRelayMalfunction:
    @pytest.mark.parametrize("addr", [STEERING_LKA, 0x412, 0x283, 0x344, ACC_CONTROL])
    def test_car_sending_our_address_stops_everything(self, addr):
        car = Car()
        car.engage()
        assert not car.rx(addr, bytes(8))
        assert car.safety.relay_malfunction and not car.safety.controls_allowed
        for a, data in [(STEERING_LKA, steer(0, False, 5)), (0x412, bytes(8)), (0x7FF, bytes(8))]:
            assert car.safety.tx_verdict(a, 0, data, car.now) == "RELAY"
        car.cruise = False
        car.car_frames()
        car.cruise = True
        car.car_frames()
        assert not car.safety.controls_allowed  # latched until the mode is set again
        assert car.safety.counters["rx_refused"] == {"RELAY": 1}
        assert Car().safety.relay_malfunction is False

    @pytest.mark.parametrize("addr", [0x365, 0x366, 0x367, 0x411, 0x414, 0x489, 0x48A, 0x48B, 0x4CB, 0x4D3, 0x2E5])
    def test_messages_without_relay_check(self, addr):
        car = Car()
        car.engage()
        assert car.rx(addr, bytes(8))
        assert not car.safety.relay_malfunction and car.safety.controls_allowed

    @pytest.mark.parametrize("addr", [ACC_CONTROL, 0x283, 0x344])
    def test_stock_longitudinal_leaves_the_dsu_its_messages(self, addr):
        car = Car(toyota_param(73, alt_brake=True, stock_longitudinal=True))
        car.engage()
        assert car.rx(addr, bytes(8))
        assert not car.safety.relay_malfunction

    def test_stock_longitudinal_still_checks_steering(self):
        car = Car(toyota_param(73, alt_brake=True, stock_longitudinal=True))
        assert not car.rx(STEERING_LKA, bytes(5))
        assert car.safety.relay_malfunction
