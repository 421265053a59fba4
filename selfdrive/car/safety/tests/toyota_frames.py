"""Builders for the Toyota frames the tests send through the safety layer, and a harness that keeps
time, counters and the car's periodic messages so each test states only what it is about."""

from selfdrive.car.safety import Safety, SafetyMode, toyota_param
from selfdrive.car.safety.tests.safety_model import with_checksum

PARAM = toyota_param(73, alt_brake=True)  # the RAV4 of the real data
STEERING_LKA, ACC_CONTROL = 0x2E4, 0x343
PCM_CRUISE, TORQUE_SENSOR, WHEEL_SPEEDS, BRAKE_ALT, BRAKE_STD = 0x1D2, 0x260, 0xAA, 0x224, 0x226


def s16(v: int) -> bytes:
    return v.to_bytes(2, "big", signed=True)


def pcm_cruise(active: bool, gas_released: bool = True) -> bytes:
    return with_checksum(PCM_CRUISE, bytes([(0x20 if active else 0) | (0x10 if gas_released else 0)]) + bytes(7))


def torque_sensor(driver: int = 0, eps: int = 0) -> bytes:
    return with_checksum(TORQUE_SENSOR, b"\x00" + s16(driver) + b"\x00\x00" + s16(eps) + b"\x00")


def wheel_speeds(raw: tuple[int, int, int, int] = (6767, 6767, 6767, 6767)) -> bytes:
    return b"".join(v.to_bytes(2, "big") for v in raw)


def brake(pressed: bool, addr: int = BRAKE_ALT) -> bytes:
    byte = 0 if addr == BRAKE_ALT else 4
    data = bytearray(8)
    data[byte] = 0x20 if pressed else 0
    return bytes(data)


def steer(torque: int, request: bool = True, counter: int = 0) -> bytes:
    return with_checksum(STEERING_LKA, bytes([0x80 | (counter & 0x3F) << 1 | int(request)]) + s16(torque) + b"\x00\x00")


def accel(mm_s2: int, cancel: bool = False) -> bytes:
    return with_checksum(ACC_CONTROL, s16(mm_s2) + bytes([0x63, 0xC0 | int(cancel)]) + bytes(4))


class Car:
    """A Toyota on bus 0 and our sender, with a clock. Each step advances time by `dt_us`."""

    def __init__(self, param: int = PARAM, dt_us: int = 10_000):
        self.safety = Safety(SafetyMode.TOYOTA, param)
        self.brake_addr = BRAKE_ALT if param & 0x100 else BRAKE_STD
        self.now = 1_000_000
        self.dt = dt_us
        self.counter = 0
        self.driver = 0
        self.eps = 0
        self.cruise = False
        self.gas_released = True
        self.last = 0  # last allowed steering command

    def tick(self, dt_us: int | None = None) -> None:
        self.now += self.dt if dt_us is None else dt_us

    def rx(self, addr: int, data: bytes, bus: int = 0) -> bool:
        return self.safety.rx(addr, bus, data, self.now)

    def car_frames(self, skip: int | None = None, heartbeat: bool = True) -> None:
        """One round of the tracked messages (all but `skip`) and a heartbeat, at the current time."""
        if heartbeat:
            self.safety.heartbeat(self.now)
        frames = {PCM_CRUISE: pcm_cruise(self.cruise, self.gas_released),
                  TORQUE_SENSOR: torque_sensor(self.driver, self.eps),
                  WHEEL_SPEEDS: wheel_speeds(), self.brake_addr: brake(False, self.brake_addr)}
        for addr, data in frames.items():
            if addr != skip:
                assert self.rx(addr, data)

    def advance(self, us: int, heartbeat: bool = True, skip: int | None = None) -> None:
        """Lets `us` pass with the car's messages arriving every 50 ms (and heartbeats, if asked)."""
        end = self.now + us
        while self.now < end:
            self.tick(min(50_000, end - self.now))
            self.car_frames(skip=skip, heartbeat=heartbeat)

    def engage(self) -> None:
        self.cruise = False
        self.car_frames()
        self.tick()
        self.cruise = True
        self.car_frames()
        assert self.safety.controls_allowed
        self.engaged_at = self.now

    def send_steer(self, torque: int, request: bool = True, counter: int | None = None,
                   dt_us: int | None = None) -> str:
        self.tick(dt_us)
        self.counter = (self.counter + 1) % 64 if counter is None else counter
        verdict = self.safety.tx_verdict(STEERING_LKA, 0, steer(torque, request, self.counter), self.now)
        self.last = torque if verdict == "OK" else 0
        return verdict

    def ramp_to(self, target: int, step: int = 15, dt_us: int | None = None) -> None:
        """Allowed frames from the last command to `target`, with the EPS following the command."""
        while self.last != target:
            torque = min(self.last + step, target) if target > self.last else max(self.last - step, target)
            self.eps = self.eps_for(torque)
            self.car_frames()
            verdict = self.send_steer(torque, dt_us=dt_us)
            assert verdict == "OK", (torque, verdict)

    @staticmethod
    def eps_for(torque: int) -> int:
        # measured raw EPS torque that scales (×73/100) to about the command
        return int(torque * 100 / 73)
