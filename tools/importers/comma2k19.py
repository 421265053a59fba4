"""Imports a comma2k19 segment's CAN into a roadpilot route, so card, replay and plots read it like a drive.

    python -m tools.importers.comma2k19 ../shared/data/comma2k19-rav4 [--name NAME] [--car TOYOTA_RAV4]

Reads `processed_log/CAN/raw_can/{t,src,address,data}` (NumPy arrays without the .npy extension) and
writes one `can` message per 10 ms window, as canbridged publishes them: logMonoTime is the end of the
window in the data's own monotonic seconds, empty windows give empty messages (a silent bus stays visible).
Buses keep their numbers: 0/1 are the car's, 128/129 what the assistant in the car sent (the panda's
echo), which is roadpilot's convention too, so card and canbridged's replay backend skip them.

Frame lengths: the data set stores payloads as `S8`, which drops trailing zero bytes, so the DLC is lost.
A frame whose message the platform's DBC knows is padded back to the DBC length (exact); any other frame
gets the longest payload its (bus, address) ever had in the recording (an estimate: a message whose last
bytes are always zero stays short). Both counts are stored in route.json with the source and the platform.
The data itself is never copied into the repository: the route goes under routes_dir() ($ROADPILOT_DATA).
"""

import argparse
import os
import sys
from collections import defaultdict

import numpy as np

from cereal import messaging
from tools.lib.make_route import RouteExists, write_route

BATCH_S = 0.01        # canbridged publishes one `can` message per 10 ms
SENT_OFFSET = 128     # 128 + n: frames the assistant sent on bus n
RAW_CAN = os.path.join("processed_log", "CAN", "raw_can")
DEFAULT_CAR = "TOYOTA_RAV4"


class SourceError(ValueError):
    """The source is not a comma2k19 segment (the message says what is missing or wrong)."""


def _load(path: str) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            return np.load(f, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise SourceError(f"{path}: not a readable NumPy array ({e})") from None


def raw_can_dir(src: str) -> str:
    for d in (src, os.path.join(src, RAW_CAN)):
        if all(os.path.isfile(os.path.join(d, n)) for n in ("t", "src", "address", "data")):
            return d
    raise SourceError(f"{src}: no comma2k19 CAN here (expected {RAW_CAN}/{{t,src,address,data}})")


def dbc_lengths(car: str) -> dict[int, dict[int, int]]:
    """bus -> address -> DBC length for the platform's powertrain (0, 128) and radar (1, 129) DBCs."""
    from opendbc.can.dbc import DBC
    from opendbc.car import Bus
    from opendbc.car.values import PLATFORMS
    if car not in PLATFORMS:
        raise SourceError(f"unknown platform {car!r}; opendbc platforms look like {DEFAULT_CAR}")
    out: dict[int, dict[int, int]] = {}
    for bus_name, bus in ((Bus.pt, 0), (Bus.radar, 1)):
        name = PLATFORMS[car].config.dbc_dict.get(bus_name)
        if name:
            sizes = {a: m.size for a, m in DBC(name).addr_to_msg.items()}
            out[bus] = out[bus + SENT_OFFSET] = sizes
    return out


def load_frames(src: str, car: str = DEFAULT_CAR) -> tuple[np.ndarray, list[tuple[int, bytes, int]], dict]:
    """(times s, frames (address, data, bus) in time order, stats) with lengths restored as the doc says."""
    d = raw_can_dir(src)
    t, bus, address, data = (_load(os.path.join(d, n)) for n in ("t", "src", "address", "data"))
    t, bus, address = t.reshape(-1), bus.reshape(-1), address.reshape(-1)
    if not (len(t) == len(bus) == len(address) == len(data)):
        raise SourceError(f"{d}: t/src/address/data have different lengths "
                           f"({len(t)}, {len(bus)}, {len(address)}, {len(data)})")
    if len(t) == 0:
        raise SourceError(f"{d}: no frames")
    if data.dtype.kind != "S" or data.dtype.itemsize > 8 or not np.isfinite(t).all():
        raise SourceError(f"{d}: expected S8 payloads and finite times, got {data.dtype} payloads")
    order = np.argsort(t, kind="stable")
    raw8 = data.astype("S8").view(np.uint8).reshape(-1, 8)
    stored = [bytes(x) for x in data.tolist()]  # reading an S8 element drops its trailing zeros
    longest: dict[tuple[int, int], int] = defaultdict(int)
    for b, a, s in zip(bus.tolist(), address.tolist(), stored, strict=True):
        longest[(b, a)] = max(longest[(b, a)], len(s))
    dbc = dbc_lengths(car)
    frames, exact, estimated = [], 0, 0
    for i in order.tolist():
        b, a = int(bus[i]), int(address[i])
        size = dbc.get(b, {}).get(a)
        if size is not None and len(stored[i]) <= size <= 8:
            exact += 1
        else:
            size = longest[(b, a)]
            estimated += 1
        frames.append((a, bytes(raw8[i, :size]), b))
    stats = {"frames": len(frames), "lengths_from_dbc": exact, "lengths_estimated": estimated,
             "buses": {str(k): int(v) for k, v in zip(*np.unique(bus, return_counts=True), strict=True)}}
    return t[order], frames, stats


def can_messages(t: np.ndarray, frames: list[tuple[int, bytes, int]]):
    """One `can` Event per 10 ms window from the first frame on, stamped with the window's end."""
    t0 = float(t[0])
    n_windows = int((float(t[-1]) - t0) / BATCH_S) + 1
    ends = t0 + BATCH_S * np.arange(1, n_windows + 1)
    cuts = np.searchsorted(t, ends, side="left")
    prev = 0
    for end, cut in zip(ends.tolist(), cuts.tolist(), strict=True):
        batch = frames[prev:cut]
        msg = messaging.new_message("can", len(batch))
        msg.logMonoTime = int(round(end * 1e9))
        for c, (address, dat, bus) in zip(msg.can, batch, strict=True):
            c.address, c.dat, c.src = address, dat, bus
        prev = cut
        yield msg


def import_route(src: str, name: str | None = None, car: str = DEFAULT_CAR, segment_seconds: float = 60.0,
                 overwrite: bool = False) -> str:
    """Converts the comma2k19 segment at `src` into route `name` (default: the folder's name); returns its path."""
    t, frames, stats = load_frames(src, car)
    name = name or os.path.basename(os.path.abspath(src).rstrip("/"))
    meta = {"importer": "comma2k19", "source": os.path.abspath(src), "car": car, **stats}
    return write_route(can_messages(t, frames), name, segment_seconds, meta, overwrite)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.importers.comma2k19", description=__doc__.splitlines()[0])
    ap.add_argument("source", help="a comma2k19 segment folder (with processed_log/CAN/raw_can) or raw_can itself")
    ap.add_argument("--name", default=None, help="route name (default: the source folder's name)")
    ap.add_argument("--car", default=DEFAULT_CAR, help=f"opendbc platform whose DBCs restore lengths ({DEFAULT_CAR})")
    ap.add_argument("--segment-seconds", type=float, default=60.0, help="segment length (default 60, as loggerd)")
    ap.add_argument("--force", action="store_true", help="replace the route when it exists")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        path = import_route(args.source, args.name, args.car, args.segment_seconds, args.force)
    except (SourceError, RouteExists, ValueError) as e:
        print(f"comma2k19 import: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
