"""The real 2018 RAV4 minute in ../shared/data/comma2k19-rav4 (see its README), as frames ready for
the safety layer: (time µs, bus, address, payload), in time order.

Two corrections, both from the data set's README and the frames themselves:
- the `S8` dtype drops trailing zero bytes, so each payload is padded back to its DBC length (four
  DSU/camera stand-ins the DBC does not list get the length the assistant sent them with);
- the panda's echo of its own transmissions (bus 128) sometimes lists two STEERING_LKA frames of the
  same USB batch, with the same timestamp, in the order they left the CAN controller's mailboxes
  rather than the order the assistant produced them (counter 40 before 39, four times in the
  minute). The safety layer sees frames in the order they are produced, so within one timestamp the
  sent STEERING_LKA frames are put back in counter order. No frame with a distinct time moves.
"""

from functools import lru_cache
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[4] / ".." / "shared" / "data" / "comma2k19-rav4"
RAW = DATA / "processed_log" / "CAN" / "raw_can"
SKIP_REASON = f"real data not present at {DATA.resolve()} (the shared data folder beside the checkout)"

PT_DBC = "toyota_new_mc_pt_generated"  # TOYOTA_RAV4 (2017-18) in opendbc
RADAR_DBC = "toyota_adas"
# Sent by the assistant, not in the DBC: lengths of the 2018 assistant's static DSU/camera messages.
EXTRA_LENGTHS = {0x366: 7, 0x367: 2, 0x4CB: 8, 0x4D3: 8}
STEERING_LKA = 0x2E4
SENT = 128  # the panda's echo of what the assistant sent on bus 0

Frame = tuple[int, int, int, bytes]


def available() -> bool:
    return (RAW / "t").exists()


def _load(name: str) -> np.ndarray:
    with open(RAW / name, "rb") as f:
        return np.load(f)


@lru_cache(maxsize=1)
def dbc_lengths() -> dict[int, dict[int, int]]:
    from opendbc.can.dbc import DBC
    pt = {addr: m.size for addr, m in DBC(PT_DBC).msgs.items()}
    return {0: pt, 1: {addr: m.size for addr, m in DBC(RADAR_DBC).msgs.items()}, SENT: {**pt, **EXTRA_LENGTHS}}


def _counter(data: bytes) -> int:
    return (data[0] >> 1) & 0x3F


def _restore_sent_order(frames: list[Frame]) -> list[Frame]:
    positions = [i for i, f in enumerate(frames) if f[1] == SENT and f[2] == STEERING_LKA]
    out = list(frames)
    prev_counter = None
    i = 0
    while i < len(positions):
        j = i
        while j + 1 < len(positions) and frames[positions[j + 1]][0] == frames[positions[i]][0]:
            j += 1
        group = positions[i:j + 1]
        ref = _counter(frames[group[0]][3]) if prev_counter is None else prev_counter
        ordered = sorted((frames[k] for k in group), key=lambda f: (_counter(f[3]) - ref) % 64)
        for pos, f in zip(group, ordered, strict=True):
            out[pos] = f
        prev_counter = _counter(ordered[-1][3])
        i = j + 1
    return out


@lru_cache(maxsize=1)
def frames() -> tuple[Frame, ...]:
    """Buses 0, 1 (the car's frames) and 128 (what the assistant sent on bus 0), in time order."""
    t, src, addr, data = (_load(n) for n in ("t", "src", "address", "data"))
    lengths = dbc_lengths()
    out: list[Frame] = []
    for tt, bus, a, d in zip(t.tolist(), src.tolist(), addr.tolist(), data.tolist(), strict=True):
        if bus not in lengths:
            continue
        n = lengths[bus].get(a, len(d))
        if len(d) > n:
            raise ValueError(f"bus {bus} {a:#x}: {len(d)} bytes, longer than its DBC length {n}")
        out.append((round(tt * 1e6), bus, a, d + bytes(n - len(d))))
    return tuple(_restore_sent_order(out))
