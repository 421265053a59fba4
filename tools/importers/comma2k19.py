"""Imports a comma2k19 segment's CAN into a roadpilot route, so card, replay and plots read it like a drive.

    python -m tools.importers.comma2k19 ../shared/data/comma2k19-rav4 [--name NAME] [--car TOYOTA_RAV4]

Reads `processed_log/CAN/raw_can/{t,src,address,data}` (NumPy arrays without the .npy extension) and
writes one `can` message per 10 ms window, as canbridged publishes them: logMonoTime is the end of the
window in the data's own monotonic seconds, empty windows give empty messages (a silent bus stays visible).
Buses keep their numbers: 0/1 are the car's, 128/129 what the assistant in the car sent (the panda's
echo), which is roadpilot's convention too, so card and canbridged's replay backend skip them.

Frame lengths: the data set stores payloads as `S8`, which drops trailing zero bytes, so the DLC is lost.
A frame whose message the platform's DBCs know is padded back to the DBC length; one they leave out, to the
length in its brand's reference DBC in opendbc (REFERENCE_DBCS: it lists the DSU's and the camera's messages,
which an assistant standing in for them sends, such as 0x366 and 0x4CB, 7 and 8 bytes in opendbc's Toyota
safety table, stored in the RAV4 minute as 6 and 1). Both are exact. Any other frame gets the longest payload
its (bus, address) had in the recording: the data cannot say more (a message whose last bytes are always zero
stays short). The counts are stored in route.json with the source and the platform.

Echo order: the panda's echo of what the assistant sent (bus 128+n) sometimes lists two frames of one message
from the same USB batch, with the same timestamp, in the order they left the CAN controller's mailboxes rather
than the order the assistant produced them (STEERING_LKA's counter 40 before 39, four times in the RAV4 minute;
a safety layer, which sees frames in the order they are produced, refuses the torque step and the counter).
Within one timestamp, the sent frames of a message with a COUNTER in the DBC are put back in counter order,
following the frame before them; no frame with a distinct time moves. How many moved is in route.json too.

The data itself is never copied into the repository: the route goes under routes_dir() ($ROADPILOT_DATA).
"""

import math
import os
import sys
from collections import defaultdict

import numpy as np
from opendbc.car.can_definitions import CanData

from hardware.can_backends import MAX_BUS, MAX_EXT_ADDRESS, NPY_LOAD_ERRORS
from selfdrive.loggerd.logreader import ToolArgumentParser, finite_float
from tools.importers.can_route import BATCH_S, can_messages, write_import

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
# brand (opendbc's package name) -> opendbc's reference DBC of its powertrain bus, for the messages the platforms'
# generated DBCs leave out (module doc); a platform's own DBC wins where both list a message
REFERENCE_DBCS = {"toyota": "toyota_2017_ref_pt"}


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


def dbc_messages(car: str) -> dict[int, dict]:
    """bus -> address -> opendbc DBC message: the platform's powertrain DBC over its brand's reference DBC for
    buses 0 and 128, its radar DBC for 1 and 129."""
    from opendbc.can.dbc import DBC
    from opendbc.car import Bus
    from opendbc.car.values import PLATFORMS
    if car not in PLATFORMS:
        raise SourceError(f"unknown platform {car!r}; opendbc platforms look like {DEFAULT_CAR}")
    platform = PLATFORMS[car]
    brand = type(platform).__module__.split(".")[-2]  # opendbc.car.<brand>.values
    out: dict[int, dict] = {}
    for bus_name, bus, under in ((Bus.pt, 0, REFERENCE_DBCS.get(brand)), (Bus.radar, 1, None)):
        names = [n for n in (under, platform.config.dbc_dict.get(bus_name)) if n]  # the later one wins
        if names:
            out[bus] = out[bus + SENT_OFFSET] = {a: m for n in names for a, m in DBC(n).addr_to_msg.items()}
    return out


def restore_echo_order(t: np.ndarray, frames: list[CanData], dbc: dict[int, dict]) -> int:
    """Puts the sent frames of counted messages that share a timestamp back in counter order, in place (module
    doc); returns how many frames moved. `t`: the frames' times, in order."""
    from opendbc.can.dbc import SignalType
    from opendbc.can.parser import get_raw_value
    counters = {(b, a): sig for b, msgs in dbc.items() if b >= SENT_OFFSET  # the car's own frames come in order
                for a, m in msgs.items() for sig in m.sigs.values() if sig.type == SignalType.COUNTER}
    positions: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, (a, _, b) in enumerate(frames):
        if (b, a) in counters:
            positions[(b, a)].append(i)
    moved = 0
    for key, pos in positions.items():
        sig = counters[key]
        prev = None  # the counter of the message's frame before this timestamp; the first group has none: kept
        k = 0
        while k < len(pos):
            j = k + 1
            while j < len(pos) and t[pos[j]] == t[pos[k]]:
                j += 1
            group = [frames[i] for i in pos[k:j]]
            if prev is not None and len(group) > 1:
                group.sort(key=lambda f, after=prev: (get_raw_value(f.dat, sig) - after) % (1 << sig.size))
                for i, f in zip(pos[k:j], group, strict=True):
                    moved += frames[i] is not f
                    frames[i] = f
            prev = get_raw_value(group[-1].dat, sig)
            k = j
    return moved


def load_frames(src: str, car: str = DEFAULT_CAR) -> tuple[np.ndarray, list[CanData], dict]:
    """(times s, frames in time order, stats) with lengths and echo order restored as the doc says."""
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
    dbc = dbc_messages(car)
    frames, exact, estimated = [], 0, 0
    for i in order.tolist():
        b, a = int(bus[i]), int(address[i])
        msg = dbc.get(b, {}).get(a)
        if msg is not None and len(stored[i]) <= msg.size <= 8:
            size = msg.size
            exact += 1
        else:
            size = longest[(b, a)]
            estimated += 1
        frames.append(CanData(a, bytes(raw8[i, :size]), b))
    t = t[order]
    reordered = restore_echo_order(t, frames, dbc)
    stats = {"frames": len(frames), "lengths_from_dbc": exact, "lengths_estimated": estimated,
             "echo_frames_reordered": reordered,
             "buses": {str(k): int(v) for k, v in zip(*np.unique(bus, return_counts=True), strict=True)}}
    return t, frames, stats


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
