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

import math
import os
import sys
from collections import defaultdict

import numpy as np

from hardware.can_backends import MAX_BUS, MAX_EXT_ADDRESS, NPY_LOAD_ERRORS
from tools.importers.can_route import BATCH_S, can_messages, write_import
from tools.lib.logreader import ToolArgumentParser, finite_float

SENT_OFFSET = 128     # 128 + n: frames the assistant sent on bus n
# A comma2k19 segment is one minute. Times spread over more than an hour are broken (one far-off timestamp), and
# every 10 ms window of the span would become a message: refused instead of written for hours.
MAX_SPAN_S = 3600.0
MAX_TIME_S = 2**64 / 1e9 - MAX_SPAN_S  # logMonoTime is a u64 of ns
RAW_CAN = os.path.join("processed_log", "CAN", "raw_can")
# raw_can's arrays: (file, NumPy dtype kinds it may have, what that is)
COLUMNS = (("t", "fiu", "numbers (seconds)"), ("src", "iu", "integers (buses)"),
           ("address", "iu", "integers (CAN addresses)"), ("data", "S", "S8 payloads"))
DEFAULT_CAR = "TOYOTA_RAV4"


class SourceError(ValueError):
    """The source is not a comma2k19 segment (the message says what is missing or wrong)."""


def _load(path: str) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            return np.load(f, allow_pickle=False)
    except NPY_LOAD_ERRORS as e:  # EOFError, MemoryError, TokenError too: see can_backends
        raise SourceError(f"{path}: not a readable NumPy array ({type(e).__name__}: {str(e)[:200]})") from None


def _column(path: str, arr: np.ndarray, kinds: str, what: str) -> np.ndarray:
    """`arr` as the column it must be: one value per frame, (n,) or (n, 1), of a dtype kind in `kinds`."""
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise SourceError(f"{path}: expected one value per frame (shape (n,)), got shape {arr.shape}")
    if arr.dtype.kind not in kinds:
        raise SourceError(f"{path}: expected {what}, got {arr.dtype}")
    return arr


def _check_ranges(d: str, t: np.ndarray, bus: np.ndarray, address: np.ndarray) -> None:
    if not np.isfinite(t).all() or t.min() < 0 or t.max() > MAX_TIME_S:
        raise SourceError(f"{d}/t: times must be finite seconds from 0 to {MAX_TIME_S:.4g}")
    if float(t.max()) - float(t.min()) > MAX_SPAN_S:
        raise SourceError(f"{d}/t: times span {float(t.max()) - float(t.min()):.6g} s ({float(t.min()):.6g} to "
                          f"{float(t.max()):.6g}); a comma2k19 segment is a minute, at most {MAX_SPAN_S:g} s is taken")
    if bus.min() < 0 or bus.max() > SENT_OFFSET + MAX_BUS:
        raise SourceError(f"{d}/src: bus numbers must be 0 to {SENT_OFFSET + MAX_BUS}, got {bus.min()} to {bus.max()}")
    if address.min() < 0 or address.max() > MAX_EXT_ADDRESS:
        raise SourceError(f"{d}/address: CAN addresses must be 0 to {MAX_EXT_ADDRESS:#x}, "
                          f"got {address.min()} to {address.max()}")


def raw_can_dir(src: str) -> str:
    for d in (src, os.path.join(src, RAW_CAN)):
        if all(os.path.isfile(os.path.join(d, name)) for name, _, _ in COLUMNS):
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
    columns = []
    for name, kinds, what in COLUMNS:
        path = os.path.join(d, name)
        columns.append(_column(path, _load(path), kinds, what))
    t, bus, address, data = columns
    if not (len(t) == len(bus) == len(address) == len(data)):
        raise SourceError(f"{d}: t/src/address/data have different lengths "
                           f"({len(t)}, {len(bus)}, {len(address)}, {len(data)})")
    if len(t) == 0:
        raise SourceError(f"{d}: no frames")
    if data.dtype.itemsize > 8:
        raise SourceError(f"{d}/data: expected S8 payloads, got {data.dtype} payloads")
    _check_ranges(d, t, bus, address)
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


def import_route(src: str, name: str | None = None, car: str = DEFAULT_CAR, segment_seconds: float = 60.0,
                 overwrite: bool = False) -> str:
    """Converts the comma2k19 segment at `src` into route `name` (default: the folder's name); returns its path.
    Raises SourceError (bad source or arguments), RouteExists; a failed import leaves no route folder behind."""
    if not BATCH_S <= segment_seconds < math.inf:
        raise SourceError(f"segment seconds must be finite and at least one {BATCH_S:g} s window, "
                          f"got {segment_seconds}")
    t, frames, stats = load_frames(src, car)
    name = name or os.path.basename(os.path.abspath(src).rstrip("/"))
    meta = {"importer": "comma2k19", "source": os.path.abspath(src), "car": car, **stats}
    return write_import(can_messages(t, frames), name, segment_seconds, meta, overwrite)


def main(argv: list[str] | None = None) -> int:
    """Exit status 0: imported (the route's path on stdout); 2: refused, one line on stderr, no route written."""
    ap = ToolArgumentParser(prog="python -m tools.importers.comma2k19", description=__doc__.splitlines()[0])
    ap.add_argument("source", help="a comma2k19 segment folder (with processed_log/CAN/raw_can) or raw_can itself")
    ap.add_argument("--name", default=None, help="route name (default: the source folder's name)")
    ap.add_argument("--car", default=DEFAULT_CAR, help=f"opendbc platform whose DBCs restore lengths ({DEFAULT_CAR})")
    ap.add_argument("--segment-seconds", type=finite_float, default=60.0,
                    help="segment length (default 60, as loggerd)")
    ap.add_argument("--force", action="store_true", help="replace the route when it exists")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        path = import_route(args.source, args.name, args.car, args.segment_seconds, args.force)
    except (ValueError, OSError) as e:  # SourceError, a bad name, RouteExists, an unwritable data folder
        print(f"comma2k19 import: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
