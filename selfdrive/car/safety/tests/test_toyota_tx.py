"""Toyota tx hook: the table of what we may send, and every steering and acceleration rule at its
boundaries (one unit inside passes, one unit outside is refused)."""

import pytest

from selfdrive.car.safety import toyota_param
from selfdrive.car.safety.tests.realdata import EXTRA_LENGTHS, PT_DBC
from selfdrive.car.safety.tests.safety_model import TX_TABLE, with_checksum
from selfdrive.car.safety.tests.toyota_frames import (
    ACC_CONTROL,
    STEERING_LKA,
    TORQUE_SENSOR,
    Car,
    accel,
    steer,
    torque_sensor,
)

STOCK_LONG = toyota_param(73, alt_brake=True, stock_longitudinal=True)


def valid_frame(addr: int) -> bytes:
    length, checksum = TX_TABLE[addr][0], TX_TABLE[addr][1]
    data = bytes(length)
    return with_checksum(addr, data) if checksum else data


class TestTable:
    def test_lengths_follow_the_dbc(self):
        from opendbc.can.dbc import DBC
        dbc = DBC(PT_DBC).msgs
        for addr, (length, *_) in TX_TABLE.items():
            assert length == (dbc[addr].size if addr in dbc else EXTRA_LENGTHS[addr]), hex(addr)

    @pytest.mark.parametrize("addr", sorted(TX_TABLE))
    def test_every_message_of_the_table(self, addr):
        car = Car()
        length = TX_TABLE[addr][0]
        frame = valid_frame(addr)
        assert car.safety.tx_verdict(addr, 0, frame, car.now) == "OK"
        for n in (length - 1, length + 1):
            assert car.safety.tx_verdict(addr, 0, (frame + b"\x00")[:n], car.now) == "LENGTH"
        assert car.safety.tx_verdict(addr, 1, frame, car.now) == "ADDRESS"
        if TX_TABLE[addr][1]:
            bad = frame[:-1] + bytes([(frame[-1] + 1) % 256])
            assert car.safety.tx_verdict(addr, 0, bad, car.now) == "CHECKSUM"

    @pytest.mark.parametrize("addr", sorted(a for a, v in TX_TABLE.items() if v[2]))
    def test_dsu_stand_ins_only_with_our_longitudinal(self, addr):
        car = Car(STOCK_LONG)
        assert car.safety.tx_verdict(addr, 0, valid_frame(addr), car.now) == "ADDRESS"

    @pytest.mark.parametrize("addr", [0x0, 0x2E5, 0x2E3, 0x1D2, 0x260, 0x342, 0x7FF, 0x2E4 | 0x1000_0000])
    def test_unknown_addresses(self, addr):
        car = Car()
        assert car.safety.tx_verdict(addr, 0, bytes(8), car.now) == "ADDRESS"

    @pytest.mark.parametrize("addr,byte,bit", [(a, i, b) for a, v in TX_TABLE.items() for i, m in enumerate(v[4])
                                               for b in range(8) if m >> b & 1])
    def test_fields_that_must_stay_zero(self, addr, byte, bit):
        car = Car()
        data = bytearray(valid_frame(addr))
        data[byte] |= 1 << bit
        assert car.safety.tx_verdict(addr, 0, with_checksum(addr, bytes(data)), car.now) == "PAYLOAD"

    @pytest.mark.parametrize("addr,byte,bit", [(0x343, 2, 0), (0x343, 6, 7), (0x283, 0, 0), (0x283, 5, 0),
                                               (0x344, 2, 0), (0x344, 7, 7), (0x412, 7, 7)])
    def test_other_fields_are_free(self, addr, byte, bit):
        car = Car()
        data = bytearray(valid_frame(addr))
        data[byte] |= 1 << bit
        assert car.safety.tx_verdict(addr, 0, with_checksum(addr, bytes(data)) if TX_TABLE[addr][1] else bytes(data),
                                     car.now) == "OK"


class TestSteeringRequest:
    def test_no_request_no_torque_always_allowed(self):
        car = Car()
        assert car.send_steer(0, request=False) == "OK"

    @pytest.mark.parametrize("torque", [1, -1, 1500])
    def test_torque_without_request(self, torque):
        car = Car()
        car.engage()
        assert car.send_steer(torque, request=False) == "TORQUE_NO_REQUEST"

    @pytest.mark.parametrize("torque", [0, 5, -5])
    def test_request_needs_controls_allowed(self, torque):
        car = Car()
        car.car_frames()
        assert car.send_steer(torque) == "NOT_ALLOWED"
        car.engage()
        assert car.send_steer(torque) == "OK"

    def test_brake_stops_steering(self):
        car = Car()
        car.engage()
        car.ramp_to(100)
        car.rx(0x224, b"\x20" + bytes(7))
        assert car.send_steer(100) == "NOT_ALLOWED"
        assert car.send_steer(0, request=False) == "OK"


class TestCounter:
    @pytest.mark.parametrize("step,verdict", [(1, "OK"), (2, "OK"), (0, "COUNTER"), (3, "COUNTER"), (63, "COUNTER"),
                                              (62, "COUNTER"), (32, "COUNTER")])
    def test_step(self, step, verdict):
        car = Car()
        car.counter = 62
        assert car.send_steer(0, request=False, counter=62) == "OK"
        assert car.send_steer(0, request=False, counter=(62 + step) % 64) == verdict

    def test_first_frame_takes_any_counter(self):
        car = Car()
        assert car.send_steer(0, request=False, counter=37) == "OK"

    def test_refused_frame_still_sets_the_counter(self):
        car = Car()
        car.send_steer(0, request=False, counter=10)
        assert car.send_steer(0, request=False, counter=20) == "COUNTER"
        assert car.send_steer(0, request=False, counter=21) == "OK"


def engaged_at(last: int, driver: int = 0) -> Car:
    car = Car()
    car.driver = driver
    car.engage()
    car.ramp_to(last)
    return car


class TestTorqueLimits:
    @pytest.mark.parametrize("sign", [1, -1])
    def test_max_torque(self, sign):
        car = engaged_at(sign * 1500)
        assert car.send_steer(sign * 1500) == "OK"
        car = engaged_at(sign * 1490)
        assert car.send_steer(sign * 1501) == "MAX_TORQUE"

    @pytest.mark.parametrize("last,ok,bad", [
        (0, 15, 16), (0, -15, -16),                    # up from zero
        (100, 115, 116), (-100, -115, -116),           # up
        (100, 75, 74), (-100, -75, -74),               # down
        (10, -15, -16), (-10, 15, 16),                 # through zero: at most RATE_UP beyond it
        (20, -5, -6), (-20, 5, 6),                     # through zero: at most RATE_DOWN in all
    ])
    def test_rate(self, last, ok, bad):
        assert engaged_at(last).send_steer(ok) == "OK"
        assert engaged_at(last).send_steer(bad) == "RATE"

    def test_refusal_restarts_from_zero(self):
        car = engaged_at(300)
        assert car.send_steer(400) == "RATE"
        assert car.send_steer(300) == "RATE"  # judged against zero now
        assert car.send_steer(15) == "OK"

    @pytest.mark.parametrize("kind", ["length", "checksum"])
    def test_malformed_steering_frame_also_restarts_from_zero(self, kind):
        car = engaged_at(300)
        car.tick()
        car.counter += 1
        frame = steer(300, True, car.counter)
        frame = frame[:4] if kind == "length" else frame[:-1] + bytes([(frame[-1] + 1) % 256])
        assert car.safety.tx_verdict(STEERING_LKA, 0, frame, car.now) in ("LENGTH", "CHECKSUM")
        assert car.send_steer(300) == "RATE"

    def test_reengagement_starts_from_zero(self):
        car = engaged_at(300)
        car.cruise = False
        car.car_frames()
        car.engage()
        assert car.send_steer(300) == "RATE"


class TestRealTimeLimit:
    """Frames 1 ms apart: the per-frame limits alone would allow 15 per ms."""

    def ramp_fast(self, sign: int) -> Car:
        car = Car(dt_us=1000)
        car.engage()
        car.ramp_to(sign * 450, dt_us=1000)  # 30 frames in 30 ms: the window's whole allowance
        return car

    @pytest.mark.parametrize("sign", [1, -1])
    def test_window_allowance(self, sign):
        car = self.ramp_fast(sign)
        assert car.send_steer(sign * 451) == "RT_RATE"

    @pytest.mark.parametrize("sign", [1, -1])
    @pytest.mark.parametrize("elapsed,verdict", [(250_000, "RT_RATE"), (250_001, "OK")])
    def test_window_length(self, sign, elapsed, verdict):
        car = self.ramp_fast(sign)
        car.now = car.engaged_at + elapsed - 1000  # the window began with the engagement
        car.car_frames()
        assert car.send_steer(sign * 465, dt_us=1000) == verdict

    def test_window_reference_is_the_torque_at_its_start(self):
        car = self.ramp_fast(1)
        car.now = car.engaged_at + 250_001 - 1000
        car.car_frames()
        assert car.send_steer(450, dt_us=1000) == "OK"  # new window, reference 450
        car.ramp_to(900, dt_us=1000)
        assert car.send_steer(901, dt_us=1000) == "RT_RATE"

    def test_ramping_down_is_not_limited(self):
        car = self.ramp_fast(1)
        for torque in range(425, -1, -25):
            assert car.send_steer(torque, dt_us=1000) == "OK"


class TestTorqueError:
    def at(self, last: int, eps_scaled: int) -> Car:
        car = engaged_at(last)
        car.eps = int(eps_scaled * 100 / 73) + (1 if eps_scaled > 0 else -1 if eps_scaled < 0 else 0)
        for _ in range(6):  # fill the six samples
            car.tick(1000)
            car.rx(TORQUE_SENSOR, torque_sensor(0, car.eps))
        assert car.safety.car_state["eps_torque"] == eps_scaled
        return car

    @pytest.mark.parametrize("sign", [1, -1])
    def test_command_may_lead_the_eps_by_the_error(self, sign):
        assert self.at(sign * 400, sign * 50).send_steer(sign * 400) == "OK"
        assert self.at(sign * 400, sign * 50).send_steer(sign * 401) == "TORQUE_ERROR"

    @pytest.mark.parametrize("sign", [1, -1])
    def test_beyond_the_error_only_ramping_down(self, sign):
        assert self.at(sign * 500, 0).send_steer(sign * 475) == "OK"
        assert self.at(sign * 500, 0).send_steer(sign * 476) == "TORQUE_ERROR"

    @pytest.mark.parametrize("sign", [1, -1])
    def test_eps_against_the_command_counts_as_zero(self, sign):
        assert self.at(sign * 350, -sign * 300).send_steer(sign * 350) == "OK"
        assert self.at(sign * 345, -sign * 300).send_steer(sign * 351) == "TORQUE_ERROR"

    @pytest.mark.parametrize("sign", [1, -1])
    def test_six_samples_count(self, sign):
        car = self.at(sign * 600, sign * 300)
        car.tick(1000)
        for _ in range(5):
            car.rx(TORQUE_SENSOR, torque_sensor(0, 0))
        assert car.send_steer(sign * 615) == "OK"  # the sixth-newest sample still says 300
        car = self.at(sign * 600, sign * 300)
        for _ in range(6):
            car.rx(TORQUE_SENSOR, torque_sensor(0, 0))
        assert car.send_steer(sign * 600) == "TORQUE_ERROR"

    def test_samples_restart_at_zero_with_the_mode(self):
        old = Car()
        for _ in range(6):
            old.rx(TORQUE_SENSOR, torque_sensor(0, -2000))
        car = Car()
        car.car_frames(skip=TORQUE_SENSOR)
        car.rx(TORQUE_SENSOR, torque_sensor(0, 2000))  # one sample: the other five are zero, not -1460
        car.cruise = True
        car.car_frames(skip=TORQUE_SENSOR)
        for torque in range(-15, -346, -15):
            car.car_frames(skip=TORQUE_SENSOR)
            assert car.send_steer(torque) == "OK"
        assert car.send_steer(-360) == "TORQUE_ERROR"


class TestDriverOverride:
    @pytest.mark.parametrize("sign", [1, -1])
    @pytest.mark.parametrize("driver,limit", [(240, 100), (101, 1490), (100, 1500), (200, 500), (250, 0), (400, 0)])
    def test_limit_shrinks_with_opposing_driver_torque(self, sign, driver, limit):
        car = Car()
        car.engage()
        car.driver = -sign * driver
        car.car_frames()
        car.ramp_to(sign * max(limit - 15, 0))
        assert car.send_steer(sign * limit) == "OK"
        car = Car()
        car.engage()
        car.driver = -sign * driver
        car.car_frames()
        car.ramp_to(sign * max(limit - 1, 0))
        assert car.send_steer(sign * (limit + 1)) == ("DRIVER_OVERRIDE" if limit < 1500 else "MAX_TORQUE")

    @pytest.mark.parametrize("sign", [1, -1])
    def test_driver_steering_the_same_way_is_no_limit(self, sign):
        car = Car()
        car.engage()
        car.driver = sign * 1000
        car.ramp_to(sign * 1500)

    @pytest.mark.parametrize("sign", [1, -1])
    def test_ramping_down_stays_allowed(self, sign):
        car = engaged_at(sign * 500)
        car.driver = -sign * 400
        car.car_frames()
        assert car.send_steer(sign * 476) == "DRIVER_OVERRIDE"
        car = engaged_at(sign * 500)
        car.driver = -sign * 400
        car.car_frames()
        assert car.send_steer(sign * 475) == "OK"


class TestAcceleration:
    @pytest.mark.parametrize("value,verdict", [(2000, "OK"), (2001, "ACCEL_RANGE"), (-3500, "OK"),
                                               (-3501, "ACCEL_RANGE"), (0, "OK"), (32767, "ACCEL_RANGE"),
                                               (-32768, "ACCEL_RANGE")])
    def test_range(self, value, verdict):
        car = Car()
        car.engage()
        assert car.safety.tx_verdict(ACC_CONTROL, 0, accel(value), car.now) == verdict

    @pytest.mark.parametrize("value,verdict", [(0, "OK"), (1, "NOT_ALLOWED"), (-1, "NOT_ALLOWED"),
                                               (-3501, "ACCEL_RANGE")])
    def test_not_allowed(self, value, verdict):
        car = Car()
        car.car_frames()
        assert car.safety.tx_verdict(ACC_CONTROL, 0, accel(value), car.now) == verdict
        assert car.safety.tx_verdict(ACC_CONTROL, 0, accel(value, cancel=True), car.now) == verdict

    def test_gas_pressed(self):
        car = Car()
        car.engage()
        car.gas_released = False
        car.car_frames()
        assert car.safety.tx_verdict(ACC_CONTROL, 0, accel(500), car.now) == "NOT_ALLOWED"
        assert car.safety.tx_verdict(ACC_CONTROL, 0, accel(0), car.now) == "OK"

    @pytest.mark.parametrize("value,cancel,verdict", [(0, True, "OK"), (0, False, "NOT_ALLOWED"),
                                                      (1, True, "NOT_ALLOWED"), (-1000, True, "NOT_ALLOWED")])
    def test_stock_longitudinal_only_cancels(self, value, cancel, verdict):
        car = Car(STOCK_LONG)
        car.engage()
        assert car.safety.tx_verdict(ACC_CONTROL, 0, accel(value, cancel), car.now) == verdict
