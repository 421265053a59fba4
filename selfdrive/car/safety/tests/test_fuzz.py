"""Garbage in: random addresses, buses, lengths, payloads and clocks never crash the C, every verdict is a
known reason, and the counters add up, in every mode a platform uses. test_tools.py runs this file again
against a build with AddressSanitizer and UndefinedBehaviorSanitizer."""

import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfdrive.car.safety import Safety, SafetyMode
from selfdrive.car.safety.tests.brands import ALL_BRANDS, BrandCar

FRAMES = int(os.environ.get("SAFETY_FUZZ_FRAMES", "4000"))
CONFIGS = [(SafetyMode.SILENT, 0), (SafetyMode.NO_OUTPUT, 0), (SafetyMode.ELM327, 0), (SafetyMode.TOYOTA, 0xFFFF)]


def random_frame(rng: random.Random, known: list[tuple[int, int, int]]) -> tuple[int, int, bytes]:
    if known and rng.random() < 0.5:  # the mode's own addresses, at their length or not
        addr, bus, length = rng.choice(known)
        return addr, rng.choice([bus, bus, 0, 1, 2]), rng.randbytes(rng.choice([length, length, 8, 0]))
    addr = rng.choice([rng.randint(0, 0x7FF), rng.randint(0, 0x1FFF_FFFF), rng.choice([-1, 0x2000_0000, 2**63 - 1])])
    bus = rng.choice([0, 0, 1, 2, 7, 8, 128, -1])
    return addr, bus, rng.randbytes(rng.choice([0, 1, 5, 8, 8, 9, 12, 16, 32, 48, 64, 65]))


def fuzz(car: BrandCar | None, s: Safety, seed: int, frames: int) -> None:
    rng = random.Random(seed)
    known = [(m["addr"], m["bus"], m["len"]) for m in s.tx_table] + \
            [(m["addr"], m["bus"], m["len"]) for alts in s.rx_table for m in alts]
    now, rx_calls, tx_calls = rng.randint(0, 2**40), 0, 0
    for _ in range(frames):
        now = max(0, min(2**64 - 1, now + rng.choice([0, 1, 10_000, 10_000, 300_000, 2_000_000, -5])))
        what = rng.random()
        if what < 0.05:
            s.heartbeat(now)
        elif what < 0.15 and car is not None:  # the car's own valid messages, so that engaged states happen too
            car.now, car.engaged = now, rng.random() < 0.9
            before = car.rx_calls
            car.step(0)
            rx_calls += car.rx_calls - before  # the comma body's board is silent while not engaged
            now = car.now
        elif what < 0.5:
            s.rx(*random_frame(rng, known), now)
            rx_calls += 1
        else:
            s.tx(*random_frame(rng, known), now)
            assert s.last_reason is None or s.last_reason in s._reasons[1:]
            tx_calls += 1
    c = s.counters
    assert c["rx_total"] == rx_calls and c["tx_total"] == tx_calls
    assert c["tx_allowed"] + sum(c["tx_blocked"].values()) == tx_calls
    assert "OK" not in c["tx_blocked"] and "OK" not in c["rx_refused"]


@pytest.mark.parametrize("brand", ALL_BRANDS, ids=[b.name for b in ALL_BRANDS])
def test_random_frames_with_a_live_car_never_crash(brand):
    car = BrandCar(brand)
    fuzz(car, car.safety, seed=sum(map(ord, brand.name)), frames=FRAMES)


@pytest.mark.parametrize("mode,param", CONFIGS)
def test_random_frames_never_crash(mode, param):
    fuzz(None, Safety(mode, param), seed=param + mode, frames=FRAMES)


@settings(max_examples=50, deadline=None)
@given(addr=st.integers(-(2**63), 2**63 - 1), bus=st.integers(-(2**63), 2**63 - 1), data=st.binary(max_size=80),
       now=st.integers(0, 2**64 - 1), config=st.sampled_from(CONFIGS))
def test_any_single_frame(addr, bus, data, now, config):
    s = Safety(*config)
    assert isinstance(s.rx(addr, bus, data, now), bool)
    assert isinstance(s.tx(addr, bus, data, now), bool)
    assert not s.controls_allowed
