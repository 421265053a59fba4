"""The real 2018 RAV4 minute in ../shared/data/comma2k19-rav4 (see its README), as frames ready for
the safety layer: (time µs, bus, address, payload), in time order.

The frames are what the comma2k19 importer makes of the data (tools/importers/comma2k19.py), which puts
back what the data set lost: the payloads' lengths (its `S8` dtype drops trailing zero bytes) from the DBCs,
and the order of the panda's echo of what the assistant sent (bus 128: STEERING_LKA frames of one USB batch
listed in the order they left the CAN controller's mailboxes, four times in the minute). So the safety layer
judges exactly what an imported route holds.
"""

from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).resolve().parents[4] / ".." / "shared" / "data" / "comma2k19-rav4"
RAW = DATA / "processed_log" / "CAN" / "raw_can"
SKIP_REASON = f"real data not present at {DATA.resolve()} (the shared data folder beside the checkout)"

PT_DBC = "toyota_new_mc_pt_generated"  # TOYOTA_RAV4 (2017-18) in opendbc
SENT = 128  # the panda's echo of what the assistant sent on bus 0
# Static DSU/camera stand-ins the 2018 assistant sent on bus 0 that today's opendbc Toyota table no longer lists:
# the only sent frames a safety layer refuses (NOT_LISTED)
NOT_IN_OPENDBC = frozenset({0x367, 0x414, 0x489, 0x48A, 0x48B, 0x4D3})

Recorded = tuple[int, int, int, bytes]  # (t µs, bus, address, data): a frame of the recording and its time


def available() -> bool:
    return (RAW / "t").exists()


@lru_cache(maxsize=1)
def frames() -> tuple[Recorded, ...]:
    """Buses 0, 1 (the car's frames) and 128 (what the assistant sent on bus 0), in time order."""
    from tools.importers import comma2k19
    t, imported, _ = comma2k19.load_frames(str(RAW), "TOYOTA_RAV4")
    return tuple((round(tt * 1e6), bus, a, d) for tt, (a, d, bus) in zip(t.tolist(), imported, strict=True)
                 if bus in (0, 1, SENT))
