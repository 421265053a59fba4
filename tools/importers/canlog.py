"""Imports a CAN log (candump, Vector ASC/BLF, PEAK TRC, python-can CSV/SQLite) into a roadpilot route.

    python -m tools.importers.canlog drive.log [--out ROUTE_DIR] [--bus can0:0,can1:2] [--car TOYOTA_RAV4] [--force]

The route is what loggerd would have recorded of canbridged on that bus: one `can` message per 10 ms window, in
the log's own seconds (tools/importers/can_route.py), so `roadpilot replay`, `tools.plot`, `tools.replay.rerun`
and card read it like a drive. The file is read with python-can, its format known by the file name;
hardware/can_logs.py says which names, how the log's channels become buses (`--bus` maps named ones) and when a
file counts as cut short. Frames the log marks Tx (sent by the logging adapter) go on bus 128 + n, where
roadpilot keeps what it sent itself; error frames, remote frames and anything else canbridged would refuse
(`classify`) are dropped and counted. route.json holds the source, its format, each channel's bus, the counts
and the platform given with --car.

Exit status 0: imported, the route's path on stdout (progress on stderr); 2: refused, one line on stderr, and no
route folder left behind.
"""

import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

import numpy as np
from opendbc.car.can_definitions import CanData

from common.paths import routes_dir
from hardware.can_backends import MAX_BUS, classify
from hardware.can_logs import FORMATS, SENT_BUS_OFFSET, CanLog, CanLogError, parse_bus_map, read_can_log
from selfdrive.loggerd.loggerd import DEFAULT_SEGMENT_SECONDS
from selfdrive.loggerd.logreader import ToolArgumentParser
from tools.importers.can_route import BATCH_S, can_messages, write_import
from tools.lib.make_route import RouteExists

# Every 10 ms window of the span becomes a message, empty or not: a log whose times spread wider than a day has
# a broken timestamp (or is several logs in one), and is refused rather than written as days of silence.
MAX_SPAN_S = 24 * 3600.0
MAX_TIME_S = 2**64 / 1e9 - MAX_SPAN_S  # logMonoTime is a u64 of ns
PROGRESS_STEPS = 10


def usable_frames(log: CanLog) -> tuple[np.ndarray, list[CanData], Counter]:
    """(times, frames, dropped: classify's reason -> count) of a read CanLog."""
    times, frames, dropped = [], [], Counter()
    for t, raw in zip(log.times.tolist(), log.frames, strict=True):
        sent = raw.src > MAX_BUS  # judged on the bus it was sent on; kept at 128 + n
        frame, why = classify(raw._replace(src=raw.src - SENT_BUS_OFFSET) if sent else raw)
        if frame is None:
            dropped[why] += 1
            continue
        times.append(t)
        frames.append(frame._replace(src=raw.src))
    return np.array(times), frames, dropped


def _check_times(path: str, t: np.ndarray) -> None:
    if t[0] < 0 or t[-1] > MAX_TIME_S:
        raise CanLogError(f"{path}: times must be seconds from 0 to {MAX_TIME_S:.4g}, got {t[0]:.6g} to {t[-1]:.6g}")
    if t[-1] - t[0] > MAX_SPAN_S:
        raise CanLogError(f"{path}: frames span {t[-1] - t[0]:.6g} s; at most {MAX_SPAN_S:g} s (a day) is taken")


def _reporting(messages: Iterable, n: int, progress: Callable[[str], None]) -> Iterator:
    step = max(1, n // PROGRESS_STEPS)
    for i, msg in enumerate(messages, 1):
        yield msg
        if i % step == 0 or i == n:
            progress(f"writing {100 * i // n}% ({i * BATCH_S:.1f} of {n * BATCH_S:.1f} s)")


def import_log(path: str, out: str | None = None, bus_map: dict[str, int] | None = None, car: str | None = None,
               overwrite: bool = False, progress: Callable[[str], None] = lambda text: None) -> str:
    """Writes the CAN log at `path` as the route folder `out` (default: <routes_dir>/<file name without its
    suffixes>); returns the route's path. Raises CanLogError (the file), ValueError (arguments, times, the route
    name), RouteExists, OSError; a failed import leaves no route folder behind."""
    if car is not None:
        from selfdrive.car.fingerprinting import known_platform
        if not known_platform(car):
            raise ValueError(f"unknown platform {car!r}; opendbc platforms look like TOYOTA_RAV4")
    if out is None:
        base = os.path.basename(path)
        base = base[:-3] if base.lower().endswith(".gz") else base
        out = os.path.join(routes_dir(), os.path.splitext(base)[0])
    out = os.path.abspath(out)
    if os.path.exists(out) and not overwrite:  # said before reading what may be a long log
        raise RouteExists(f"{out} already exists (--force replaces it)")
    log = read_can_log(path, bus_map, progress)
    t, frames, dropped = usable_frames(log)
    if not frames:
        raise CanLogError(f"{path}: no usable frames (dropped: {dict(dropped)})")
    _check_times(path, t)
    buses = Counter(bus for _, _, bus in frames)
    stats = {"frames": len(frames), "buses": {str(b): n for b, n in sorted(buses.items())},
             "dropped": dict(dropped), "sent_frames": sum(n for b, n in buses.items() if b > MAX_BUS),
             "channels": log.buses, "skipped_channels": log.skipped, "reader_warnings": len(log.warnings)}
    progress(f"{len(frames)} frames over {t[-1] - t[0]:.1f} s on buses {stats['buses']}"
             + (f"; dropped {stats['dropped']}" if dropped else "")
             + (f"; skipped channels {log.skipped}" if log.skipped else "")
             + (f"; python-can warned {len(log.warnings)} time(s), first: {log.warnings[0]}" if log.warnings else ""))
    meta = {"importer": "canlog", "source": os.path.abspath(path), "format": log.format, **stats}
    if car is not None:
        meta["car"] = car
    n_windows = int((float(t[-1]) - float(t[0])) / BATCH_S) + 1
    return write_import(_reporting(can_messages(t, frames), n_windows, progress), os.path.basename(out),
                        DEFAULT_SEGMENT_SECONDS, meta, overwrite, root=os.path.dirname(out))


def main(argv: list[str] | None = None) -> int:
    """Exit status 0: imported (the route's path on stdout); 2: refused, one line on stderr, no route written."""
    paragraphs = __doc__.split("\n\n")
    ap = ToolArgumentParser(prog="python -m tools.importers.canlog", description=f"{paragraphs[0]}\n\n{paragraphs[2]}",
                            epilog="Formats, known by the file name (the text ones and .blf also gzipped, a.asc.gz): "
                                   + ", ".join(f"{suffix} {name}" for suffix, name in FORMATS.items())
                                   + " (that one needs the asammdf package). To play a log into canbridged without "
                                     "importing it: --backend replay:FILE[?bus=MAP].")
    ap.add_argument("file", help="the CAN log")
    ap.add_argument("--out", default=None, metavar="ROUTE_DIR",
                    help="the route folder to write (default: <data>/routes/<file name without suffix>)")
    ap.add_argument("--bus", default=None, metavar="MAP",
                    help="channel:bus pairs, e.g. can0:0,can1:2 (needed for logs with several named channels; "
                         "channels left out are skipped). Default: a numbered channel is its bus (Vector's and "
                         "PEAK's channel 1 is bus 0), a log without channel names is bus 0")
    ap.add_argument("--car", default=None, metavar="PLATFORM",
                    help="the opendbc platform the drive is of (e.g. TOYOTA_RAV4), kept in route.json")
    ap.add_argument("--force", action="store_true", help="replace the route folder when it exists")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        bus_map = parse_bus_map(args.bus) if args.bus is not None else None
        path = import_log(args.file, args.out, bus_map, args.car, args.force,
                          lambda text: print(f"canlog: {text}", file=sys.stderr, flush=True))
    except (CanLogError, ValueError, OSError) as e:  # a bad file or map, RouteExists, an unwritable folder
        print(f"canlog import: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
