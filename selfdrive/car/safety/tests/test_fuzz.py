"""Garbage in: random addresses, buses, lengths, payloads and clocks never crash the C, every verdict is
a known reason, and the counters add up. test_tools.py runs this file again against a build with
AddressSanitizer and UndefinedBehaviorSanitizer."""

import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfdrive.car.safety import Safety, SafetyMode, toyota_param
from selfdrive.car.safety.tests.safety_model import TX_TABLE, with_checksum
from selfdrive.car.safety.tests.toyota_frames import pcm_cruise, torque_sensor, wheel_speeds

CONFIGS = [(SafetyMode.SILENT, 0), (SafetyMode.NO_OUTPUT, 0), (SafetyMode.TOYOTA, toyota_param(73, alt_brake=True)),
           (SafetyMode.TOYOTA, toyota_param(1)), (SafetyMode.TOYOTA, toyota_param(255, stock_longitudinal=True))]
KNOWN = [0x1D2, 0x260, 0xAA, 0x224, 0x226, *TX_TABLE]
FRAMES = int(os.environ.get("SAFETY_FUZZ_FRAMES", "20000"))


def random_frame(rng: random.Random) -> tuple[int, int, bytes]:
    addr = rng.choice([rng.choice(KNOWN), rng.randint(0, 0x7FF), rng.randint(0, 0x1FFF_FFFF),
                       rng.choice([-1, 0x2000_0000, -(2**63), 2**63 - 1])])
    bus = rng.choice([0, 0, 0, 1, 2, 128, -1, 2**40])
    if addr in TX_TABLE and rng.random() < 0.5:
        data = rng.randbytes(TX_TABLE[addr][0])
        data = with_checksum(addr, data) if TX_TABLE[addr][1] else data
    elif addr in (0x1D2, 0x260) and rng.random() < 0.5:
        data = with_checksum(addr, rng.randbytes(8))
    else:
        data = rng.randbytes(rng.choice([0, 1, 2, 5, 7, 8, 8, 8, 9, 16, 64]))
    return addr, bus, data


def fuzz(mode: SafetyMode, param: int, seed: int, frames: int) -> None:
    rng = random.Random(seed)
    s = Safety(mode, param)
    now, rx_calls, tx_calls = rng.randint(0, 2**63), 0, 0
    reasons = set(s._reasons)
    for _ in range(frames):
        now = max(0, min(2**64 - 1, now + rng.choice([0, 1, 10_000, 10_000, 300_000, 2_000_000, -5, -2**40])))
        what = rng.random()
        if what < 0.05:
            s.heartbeat(now)
        elif what < 0.15:  # the car's periodic messages, so that engaged states happen too
            eps = torque_sensor(rng.randint(-32768, 32767), rng.randint(-32768, 32767))
            for addr, data in [(0x1D2, pcm_cruise(rng.random() < 0.8)), (0x260, eps), (0xAA, wheel_speeds()),
                               (0x224, bytes(8))]:
                s.rx(addr, 0, data, now)
                rx_calls += 1
        elif what < 0.55:
            s.rx(*random_frame(rng), now)
            rx_calls += 1
        else:
            s.tx(*random_frame(rng), now)
            assert s.last_reason is None or s.last_reason in reasons
            tx_calls += 1
    c = s.counters
    assert c["rx_total"] == rx_calls and c["tx_total"] == tx_calls
    assert c["tx_allowed"] + sum(c["tx_blocked"].values()) == tx_calls
    assert "OK" not in c["tx_blocked"] and "OK" not in c["rx_refused"]


@pytest.mark.parametrize("mode,param", CONFIGS)
def test_random_frames_never_crash(mode, param):
    fuzz(mode, param, seed=hash((mode, param)) & 0xFFFF, frames=FRAMES)


@settings(max_examples=50, deadline=None)
@given(addr=st.integers(-(2**63), 2**63 - 1), bus=st.integers(-(2**63), 2**63 - 1), data=st.binary(max_size=80),
       now=st.integers(0, 2**64 - 1), config=st.sampled_from(CONFIGS))
def test_any_single_frame(addr, bus, data, now, config):
    s = Safety(*config)
    assert isinstance(s.rx(addr, bus, data, now), bool)
    assert isinstance(s.tx(addr, bus, data, now), bool)
    assert not s.controls_allowed
