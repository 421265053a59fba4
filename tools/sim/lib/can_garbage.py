"""Garbage on the simulated car's bus, for fault tests (SimConfig.can_garbage: frames per 10 ms step).

Each garbage frame is one of:
  unknown    an address no message of the car's DBC has (11 or 29 bits), 0..8 random bytes, bus 0 or 2
  length     one of the car's own messages with a length other than its DBC length (0..8 bytes)
  checksum   one of the car's checksummed messages at its length with a checksum that does not match
  long       more than 8 bytes (CAN FD sizes), which classic CAN cannot carry, at any address
All of it is detectable: the adapter drops what CAN cannot carry, the safety layer ignores a tracked message
with a bad length or checksum, card drops a known message that cannot be what its address says and never
reads an unknown one. Two kinds of frame are left out on purpose, because they are other faults: a known
message without a checksum at its right length is valid data from the car's point of view (a broken ECU,
not noise), and an address the assistant itself sends on bus 0 (RELAY_ADDRESSES) means the harness's relay
does not cut the stock ECU off, which the safety layer latches as a relay malfunction.
Deterministic: a numpy Generator seeded with the drive's seed.
"""

import numpy as np
from opendbc.can.dbc import DBC, SignalType
from opendbc.can.parser import get_raw_value
from opendbc.car.can_definitions import CanData

KINDS = ("unknown", "length", "checksum", "long")
# Every address a Toyota safety mode relay-checks on bus 0 (opendbc's modes/toyota.h, check_relay): STEERING_LKA,
# STEERING_LTA, STEERING_LTA_2, LKAS_HUD, ACC_CONTROL and ACC_CONTROL_2, plus PRE_COLLISION and PRE_COLLISION_2 that
# we send on bus 0 too. One frame at any of them, at any length, latches the relay malfunction for the rest of the
# drive (tools/sim/tests/test_can_garbage.py checks this set against the safety layer's tables).
RELAY_ADDRESSES = frozenset({0x2E4, 0x191, 0x131, 0x412, 0x343, 0x183, 0x283, 0x344})
FD_LENGTHS = (12, 16, 20, 24, 32, 48, 64)


class CanGarbage:
    def __init__(self, dbc_name: str, seed: int, per_step: float):
        if not per_step >= 0:
            raise ValueError(f"garbage frames per step must be >= 0, got {per_step}")
        self.rng = np.random.default_rng([seed, 0xBAD])
        self.per_step = per_step
        dbc = DBC(dbc_name)
        self.avoid = frozenset(dbc.addr_to_msg) | RELAY_ADDRESSES  # for the unknown addresses
        self.messages = [(a, m.size) for a, m in sorted(dbc.addr_to_msg.items()) if a not in RELAY_ADDRESSES]
        self.checksummed = []
        for a, m in sorted(dbc.addr_to_msg.items()):
            csum = next((s for s in m.sigs.values() if s.type > SignalType.COUNTER and s.calc_checksum), None)
            if csum is not None and a not in RELAY_ADDRESSES:
                self.checksummed.append((a, m.size, csum))
        self.counts = dict.fromkeys(KINDS, 0)

    def frames(self) -> list[CanData]:
        """This step's garbage (Poisson, `per_step` frames on average)."""
        return [self.frame() for _ in range(int(self.rng.poisson(self.per_step)))]

    def frame(self) -> CanData:
        rng = self.rng
        kind = KINDS[int(rng.integers(len(KINDS)))]
        self.counts[kind] += 1
        bus = int(rng.choice((0, 2)))
        if kind == "unknown":
            while (addr := int(rng.integers(0x800)) if rng.random() < 0.7 else int(rng.integers(0x800, 1 << 29))) \
                    in self.avoid:
                pass
            return CanData(addr, self._bytes(int(rng.integers(9))), bus)
        if kind == "length":
            addr, size = self.messages[int(rng.integers(len(self.messages)))]
            n = int(rng.choice([k for k in range(9) if k != size]))
            return CanData(addr, self._bytes(n), 0)
        if kind == "checksum":
            addr, size, csum = self.checksummed[int(rng.integers(len(self.checksummed)))]
            while True:
                dat = self._bytes(size)
                if get_raw_value(dat, csum) != csum.calc_checksum(addr, csum, bytearray(dat)):
                    return CanData(addr, dat, 0)
        while (addr := int(rng.integers(0x800))) in RELAY_ADDRESSES:
            pass
        return CanData(addr, self._bytes(int(rng.choice(FD_LENGTHS))), bus)

    def _bytes(self, n: int) -> bytes:
        return self.rng.integers(0, 256, n, dtype=np.uint8).tobytes()
