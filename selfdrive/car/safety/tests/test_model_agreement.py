"""Random event sequences through the C and through the independent Python model: the verdicts must
be the same for every frame, and no frame the C allows may break a limit (checked directly too)."""

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfdrive.car.safety import Safety, SafetyMode, toyota_param
from selfdrive.car.safety.tests.safety_model import TX_TABLE, ToyotaModel, with_checksum
from selfdrive.car.safety.tests.toyota_frames import (
    ACC_CONTROL,
    PCM_CRUISE,
    STEERING_LKA,
    TORQUE_SENSOR,
    WHEEL_SPEEDS,
    accel,
    brake,
    pcm_cruise,
    steer,
    torque_sensor,
    wheel_speeds,
)

PARAMS = [toyota_param(73, alt_brake=True), toyota_param(100), toyota_param(73, stock_longitudinal=True)]
STEPS = [0, 1, 1000, 249_999, 250_000, 250_001, 999_999, 1_000_001] + [10_000] * 40 + [30_000] * 10
EDGE_DELTAS = [-26, -25, -16, -15, -1, 0, 1, 15, 16, 25, 26]
EVENTS = ["step"] * 2 + ["car"] * 4 + ["steer"] * 10 + ["hb", "cruise", "brake", "torque", "accel", "accel", "static",
                                                        "random", "rare", "engage"]
# Long drives: mostly engaged, so that ramps run for hundreds of frames between disengagements.
CALM_EVENTS = ["car"] * 40 + ["steer"] * 100 + ["step"] * 4 + ["torque"] * 4 + [
    "hb", "cruise", "brake", "accel", "accel", "static", "random"] + ["engage"] * 6


class Checker:
    """Feeds each event to both sides, compares, and checks the limits directly."""

    def __init__(self, param: int):
        self.c = Safety(SafetyMode.TOYOTA, param)
        self.m = ToyotaModel(param)
        self.brake_addr = 0x224 if param & 0x100 else 0x226
        self.now = 0
        self.sent_torque = 0  # the last steering torque that went out on the bus
        self.verdicts: list[str] = []

    def heartbeat(self) -> None:
        self.c.heartbeat(self.now)
        self.m.do_heartbeat(self.now)

    def rx(self, addr: int, data: bytes, bus: int = 0) -> None:
        expected = self.m.rx(addr, bus, data, self.now)
        assert self.c.rx(addr, bus, data, self.now) == (expected == "OK"), (hex(addr), data.hex(), expected)

    def tx(self, addr: int, data: bytes, bus: int = 0) -> str:
        allowed_before, gas = self.m.controls_allowed, self.m.gas
        expected = self.m.tx(addr, bus, data, self.now)
        got = self.c.tx_verdict(addr, bus, data, self.now)
        assert got == expected, (hex(addr), data.hex(), got, expected)
        if got == "OK" and addr == STEERING_LKA:
            self.check_steering(data, allowed_before)
        if got == "OK" and addr == ACC_CONTROL:
            value = int.from_bytes(data[:2], "big", signed=True)
            assert value == 0 or (allowed_before and not gas and -3500 <= value <= 2000)
        self.verdicts.append(got)
        return got

    def check_steering(self, data: bytes, allowed_before: bool) -> None:
        torque, request = int.from_bytes(data[1:3], "big", signed=True), data[0] & 1
        if request:
            assert allowed_before and abs(torque) <= 1500
            if self.sent_torque * torque >= 0:
                assert abs(torque) <= abs(self.sent_torque) + 15  # away from zero: at most RATE_UP a frame
            else:
                assert abs(torque) <= 15                          # through zero: at most RATE_UP beyond it
        else:
            assert torque == 0
        self.sent_torque = torque

    def check_state(self) -> None:
        assert self.c.controls_allowed == self.m.controls_allowed
        assert self.c.relay_malfunction == self.m.relay


class Picker:
    """The random choices of one drive, from hypothesis (shrinkable) or from a seeded RNG (fast)."""

    def __init__(self, draw=None, rng: random.Random | None = None):
        self.draw, self.rng = draw, rng

    def int(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi)) if self.draw else self.rng.randint(lo, hi)

    def choice(self, seq):
        return self.draw(st.sampled_from(seq)) if self.draw else self.rng.choice(seq)

    def binary(self, max_size: int) -> bytes:
        if self.draw:
            return self.draw(st.binary(max_size=max_size))
        return self.rng.randbytes(self.rng.randint(0, max_size))


def corrupt(data: bytes, p: Picker, one_in: int) -> bytes:
    """Flips some bits of one byte, once in `one_in` frames (never when one_in is 0)."""
    if not data or not one_in or p.int(1, one_in) != 1:
        return data
    i = p.int(0, len(data) - 1)
    return data[:i] + bytes([data[i] ^ p.int(1, 255)]) + data[i + 1:]


def healthy_round(ck: Checker, p: Picker, cruise: bool | None = None, eps_mode: str = "follow") -> None:
    """Heartbeat and one round of the car's messages; the EPS follows our last command, or reads zero
    (not steering), or reads anything."""
    ck.heartbeat()
    eps = {"follow": int(ck.m.last_torque * 100 / 73), "zero": 0}.get(eps_mode, p.int(-2500, 2500))
    cruise = ck.m.cruise_prev if cruise is None else cruise
    for addr, frame in [(PCM_CRUISE, pcm_cruise(cruise, not ck.m.gas)),
                        (TORQUE_SENSOR, torque_sensor(ck.m.driver, eps)),
                        (WHEEL_SPEEDS, wheel_speeds()), (ck.brake_addr, brake(False, ck.brake_addr))]:
        ck.rx(addr, frame)


def ramp_step(last: int, target: int) -> int:
    """The furthest step from `last` towards `target` within the rate limits."""
    highest = last + 15 if last >= 0 else min(last + 25, 15)
    lowest = max(last - 25, -15) if last >= 0 else last - 15
    return max(lowest, min(highest, target))


def drive(ck: Checker, p: Picker, events: int, engaged: bool, noise: int, violate_one_in: int,
          relay_one_in: int, table: list[str] = EVENTS) -> None:
    """`events` random events; `noise` corrupts one frame in that many; steering frames ramp towards a
    target, so that long runs of allowed torque reach the limits, except one in `violate_one_in`; one "rare" event in
    `relay_one_in` (never if 0) is the car sending one of our addresses, which ends the drive's sending."""
    if engaged:
        healthy_round(ck, p, cruise=False)
        ck.now += 10_000
        healthy_round(ck, p, cruise=True)
    target = p.choice([1500, -1500, 1600, -1600, 700, -700, p.int(-1600, 1600)])
    eps_mode = "follow"
    counter = 0
    for _ in range(events):
        kind = p.choice(table)
        if kind == "step":
            ck.now += p.choice(STEPS)
        elif kind == "hb":
            ck.heartbeat()
        elif kind == "engage" and not ck.m.controls_allowed:
            healthy_round(ck, p, cruise=False, eps_mode=eps_mode)
            ck.now += 10_000
            healthy_round(ck, p, cruise=True, eps_mode=eps_mode)
        elif kind in ("car", "engage"):
            healthy_round(ck, p, eps_mode=eps_mode)
        elif kind == "cruise":
            cruise = ck.m.cruise_prev if p.int(0, 3) else not ck.m.cruise_prev
            ck.rx(PCM_CRUISE, corrupt(pcm_cruise(cruise, p.int(0, 3) != 0), p, noise))
        elif kind == "brake":
            which = p.choice([0x224, 0x226])
            ck.rx(which, corrupt(brake(p.int(0, 9) == 0, which), p, noise))
        elif kind == "torque":
            driver = p.choice([0] * 6 + [p.int(-150, 150), p.int(-150, 150), p.int(-400, 400)])
            ck.rx(TORQUE_SENSOR, corrupt(torque_sensor(driver, p.int(-3000, 3000)), p, noise))
        elif kind == "steer":
            ck.now += p.choice([1000, 10_000, 10_000, 10_000])
            last = ck.m.last_torque
            if p.int(1, violate_one_in) != 1:
                torque = ramp_step(last, target)
            elif p.int(0, 3):
                torque = last + p.choice(EDGE_DELTAS)
            else:
                torque = p.int(-1600, 1600)
            counter = (counter + (p.choice([2, 3, 0, 63]) if noise and p.int(1, noise) == 1 else 1)) % 64
            request = p.int(1, 2 * violate_one_in) != 1 or torque == 0
            if not request and p.int(0, 3):
                torque = 0
            ck.tx(STEERING_LKA, corrupt(steer(max(-32768, min(32767, torque)), request, counter), p, noise))
            if p.int(0, 199) == 0:
                target = p.choice([1600, -1600, p.int(-1600, 1600)])
            if p.int(0, 99) == 0:
                eps_mode = p.choice(["follow", "follow", "zero", "random"])
        elif kind == "accel":
            value = p.choice([0, 2000, 2001, -3500, -3501, p.int(-5000, 5000)])
            ck.tx(ACC_CONTROL, corrupt(accel(value, p.int(0, 1) == 1), p, noise))
        elif kind == "static":
            addr = p.choice(sorted(TX_TABLE))
            frame = bytes(TX_TABLE[addr][0])
            ck.tx(addr, corrupt(with_checksum(addr, frame) if TX_TABLE[addr][1] else frame, p, noise))
        elif kind == "random":
            addr = p.choice([0x7FF, 0x123, 0x365, 0x2E5, -1, 0x2000_0000, STEERING_LKA, ACC_CONTROL])
            payload, bus = p.binary(10), p.choice([0, 0, 1, 2, 128])
            if p.int(0, 1):
                ck.rx(addr, payload, bus if addr not in (STEERING_LKA, ACC_CONTROL) else 1)
            else:
                ck.tx(addr, payload, bus)
        elif relay_one_in and p.int(1, relay_one_in) == 1:
            ck.rx(p.choice([STEERING_LKA, ACC_CONTROL, 0x283, 0x344, 0x412]), bytes(8))
        ck.check_state()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), param=st.sampled_from(PARAMS), engaged=st.integers(0, 3), noise=st.sampled_from([0, 0, 20, 4]))
def test_c_agrees_with_the_model(data, param, engaged, noise):
    p = Picker(draw=data.draw)
    drive(Checker(param), p, p.int(10, 120), engaged > 0, noise, violate_one_in=3, relay_one_in=20)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), param=st.sampled_from(PARAMS), noise=st.sampled_from([0, 1000]))
def test_long_drives_agree(seed, param, noise):
    """Long seeded drives that mostly ramp, so the torque reaches every limit."""
    ck = Checker(param)
    drive(ck, Picker(rng=random.Random(seed)), 3000, True, noise, violate_one_in=400, relay_one_in=0,
              table=CALM_EVENTS)
    assert ck.verdicts.count("OK") > 100


def test_long_drives_reach_every_steering_rule():
    """The seeded drives are only worth something if they exercise the rules: count the verdicts."""
    verdicts: set[str] = set()
    for seed in range(12):
        ck = Checker(PARAMS[seed % 2])
        drive(ck, Picker(rng=random.Random(seed)), 3000, True, 1000, violate_one_in=400, relay_one_in=0,
              table=CALM_EVENTS)
        verdicts |= set(ck.verdicts)
    assert {"OK", "MAX_TORQUE", "RATE", "RT_RATE", "TORQUE_ERROR", "DRIVER_OVERRIDE", "COUNTER", "CHECKSUM",
            "NOT_ALLOWED", "ACCEL_RANGE"} <= verdicts


@settings(max_examples=60, deadline=None)
@given(torques=st.lists(st.integers(-2000, 2000), min_size=1, max_size=200), dt=st.sampled_from([1000, 10_000]))
def test_engaged_commands_never_exceed_the_limits(torques, dt):
    """A healthy engaged car and arbitrary requested torques: whatever is allowed is within the limits."""
    ck = Checker(toyota_param(73, alt_brake=True))
    ck.heartbeat()
    for i, torque in enumerate(torques):
        ck.now += dt
        if i % 5 == 0:
            ck.heartbeat()
            for addr, frame in [(PCM_CRUISE, pcm_cruise(i > 0)), (TORQUE_SENSOR, torque_sensor(0, torque)),
                                (WHEEL_SPEEDS, wheel_speeds()), (0x224, brake(False))]:
                ck.rx(addr, frame)
        ck.tx(STEERING_LKA, steer(torque, True, i % 64))
        ck.check_state()
