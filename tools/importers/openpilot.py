"""Imports an openpilot route (rlog/qlog segments: bz2, zst or raw, and the road video) into a roadpilot route.

    python -m tools.importers.openpilot ROUTE_OR_FILES... [--out ROUTE_DIR] [--car TOYOTA_RAV4] [--force] [--no-video]

A source is an openpilot route folder (segments `<n>/` or `<route>--<n>/`, each holding rlog.* or, where there is no
rlog, qlog.*), one segment folder, or log files named one by one. Kept, with their logMonoTime: `can` and `sendcan`
(openpilot's CanData as ours: address, dat, src; its busTime is gone), `carState` and `carParams` (the same
opendbc car.capnp structs on both sides, copied whole) and each Event's `valid`. The road video next to each log
(fcamera.hevc, else qcamera.ts) becomes road.mp4 with roadEncodeIdx and roadCameraState, as encoderd and camerad
record a drive (tools/importers/openpilot_video.py). Everything else openpilot logged is counted in route.json and
dropped. A frame canbridged would refuse (classify) and what the panda refused to send (openpilot's bus 192 + n, a
number roadpilot has no meaning for) are dropped and counted too. route.json holds the source files, the counts, the
video's and the car: --car, or else the log's carParams.carFingerprint when opendbc knows it.

The files are read with the schema opendbc ships for openpilot logs, extended (tools/importers/openpilot_log.py), each
up to its damage: a bz2/zstd stream cut short, a message cut in half or a header no message has ends it, and what
came before is imported. Messages come out in time order (openpilot logs them as they arrive, not quite sorted).

Exit status 0: imported, the route's path on stdout (progress on stderr); 2: one line on stderr, either refused (no
openpilot log in the source, bad arguments: no route folder left behind) or damaged (the route holds what was before
the damage, its path still on stdout, the damage listed in route.json under "problems").
"""

import heapq
import os
import re
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

from common.paths import routes_dir
from selfdrive.loggerd.loggerd import DEFAULT_SEGMENT_SECONDS
from selfdrive.loggerd.logreader import ToolArgumentParser
from tools.importers.can_route import write_import
from tools.importers.openpilot_log import Damage, Msg, OpenpilotLogError, import_file
from tools.importers.openpilot_video import CAMERA_MEMBERS, CameraEntry, encode_videos, find_videos, move_into
from tools.lib.make_route import RouteExists

LOG_NAMES = ("rlog", "qlog")   # preferred first: rlog holds every message, qlog a decimated part
SUFFIXES = (".zst", ".bz2", "")
# a segment folder: "<n>" (a downloaded route) or "<route>--<n>" (the device's own /data/media/0/realdata)
SEGMENT_DIR = re.compile(r"^(?:.*--)?(\d+)$")
PROGRESS_STEPS = 10
ROADPILOT_LOOKALIKES = {"@1", "roadCameraState"}  # openpilot's @1 and @2 (initData, roadCameraState)


def _segment_log(folder: str) -> str | None:
    for name in LOG_NAMES:
        for suffix in SUFFIXES:
            path = os.path.join(folder, name + suffix)
            if os.path.isfile(path):
                return path
    return None


def find_logs(sources: Iterable[str]) -> list[str]:
    """The log files of `sources` (files, segment folders, route folders), in segment order per route folder."""
    files = []
    for src in sources:
        if os.path.isfile(src):
            files.append(src)
            continue
        if not os.path.isdir(src):
            raise OpenpilotLogError(f"{src}: no such file or folder")
        if (own := _segment_log(src)) is not None:
            files.append(own)
            continue
        segments = sorted((int(m.group(1)), e.path) for e in os.scandir(src)
                          if e.is_dir() and (m := SEGMENT_DIR.match(e.name)))
        logs = [log for _, d in segments if (log := _segment_log(d)) is not None]
        if not logs:
            raise OpenpilotLogError(f"{src}: no rlog/qlog here nor in segment folders <n>/ or <route>--<n>/")
        files.extend(logs)
    return files


def route_name(src: str) -> str:
    """The default route name of a source: a route folder's name; for a segment or a log file, its route's: the
    segment folder's name less its "--<n>", or the folder above a segment folder named just <n>."""
    path = os.path.abspath(src).rstrip("/")
    if not (os.path.isfile(path) or _segment_log(path) is not None):
        return os.path.basename(path)
    segment = os.path.dirname(path) if os.path.isfile(path) else path
    name = os.path.basename(segment)
    return os.path.basename(os.path.dirname(segment)) if name.isdigit() else re.sub(r"--\d+$", "", name)


def _merged(parts: list[list[Msg]]) -> Iterator[Msg]:
    """One time-ordered stream of per-file sorted lists; a segment's first messages may predate the previous one's
    last (they waited in a socket), so files are merged, not chained."""
    return heapq.merge(*parts, key=lambda m: m.logMonoTime)


def _reporting(messages: Iterable[Msg], n: int, progress: Callable[[str], None]) -> Iterator[bytes]:
    step = max(1, n // PROGRESS_STEPS)
    for i, m in enumerate(messages, 1):
        yield m.dat
        if i % step == 0 or i == n:
            progress(f"writing {100 * i // n}% ({i} of {n} messages)")


def _check_car(car: str) -> None:
    from selfdrive.car.fingerprinting import known_platform
    if not known_platform(car):
        raise ValueError(f"unknown platform {car!r}; opendbc platforms look like TOYOTA_RAV4")


class _Read(NamedTuple):
    parts: list[list[Msg]]
    read: Counter
    dropped: Counter
    log_car: str | None
    camera: dict[str, list[CameraEntry]]
    folders: dict[int, str]       # openpilot segment number -> the folder its log came from (for its video)
    damage: list[Damage]


def _read_all(files: list[str], progress: Callable[[str], None]) -> _Read:
    r = _Read([], Counter(), Counter(), None, {m: [] for m in CAMERA_MEMBERS}, {}, [])
    foreign: list[Damage] = []
    for i, path in enumerate(files, 1):
        try:
            part = import_file(path, r.damage)
        except OpenpilotLogError as e:
            if len(files) == 1:
                raise
            foreign.append(Damage(path, str(e).removeprefix(f"{path}: ")))  # the other files are still a drive
            continue
        r.parts.append(part.messages)
        r.read.update(part.read)
        r.dropped.update(part.dropped)
        r = r._replace(log_car=part.car or r.log_car)
        for member, entries in part.camera.items():
            r.camera[member].extend(entries)
        folder = os.path.dirname(os.path.abspath(path))
        number = SEGMENT_DIR.match(os.path.basename(folder))
        indexed = Counter(e.segment for m, es in part.camera.items() if m != "roadCameraState" for e in es)
        if number or indexed:  # a folder not named by its number: the segment its log indexes most
            r.folders[int(number.group(1)) if number else indexed.most_common(1)[0][0]] = folder
        progress(f"read {i}/{len(files)} {path}: {sum(part.read.values())} messages, {len(part.messages)} kept")
    r.damage[:0] = foreign
    return r


def _with_video(r: _Read, out: str, progress: Callable[[str], None]) -> tuple[list[list[Msg]], str | None, dict]:
    """(message parts with the video's messages added, the staging folder of its files or None, route.json's
    "video"). Nothing to add where no segment has an indexed video."""
    videos = find_videos(r.folders, r.camera)
    if not videos:
        return r.parts, None, {"files": []}
    t0 = min([p[0].logMonoTime for p in r.parts if p] + [e.logMonoTime for es in r.camera.values() for e in es])
    seg_ns = int(DEFAULT_SEGMENT_SECONDS * 1e9)
    staging = tempfile.mkdtemp(prefix=".openpilot-video-", dir=os.path.dirname(out))
    try:
        msgs, skipped = encode_videos(videos, r.camera["roadCameraState"], lambda t: (t - t0) // seg_ns, staging,
                                      progress)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    meta = {"files": [v.path for _, v in sorted(videos.items())], "frames": len(msgs) // 2, "skipped": dict(skipped)}
    return [*r.parts, [Msg(t, dat) for t, dat in msgs]], staging, meta


def import_route(sources: list[str], out: str | None = None, car: str | None = None, overwrite: bool = False,
                 video: bool = True, progress: Callable[[str], None] = lambda text: None) -> tuple[str, list[Damage]]:
    """Writes the openpilot logs of `sources` (and, with `video`, their road video) as the route folder `out`
    (default: <routes_dir>/<the route's name>); returns (the route's path, the damage read past). Raises
    OpenpilotLogError (no openpilot log), ValueError (arguments), RouteExists, OSError; a refused import leaves no
    route folder behind."""
    if car is not None:
        _check_car(car)
    files = find_logs(sources)
    out = os.path.abspath(out if out is not None else os.path.join(routes_dir(), route_name(sources[0])))
    if os.path.exists(out) and not overwrite:
        raise RouteExists(f"{out} already exists (--force replaces it)")
    r = _read_all(files, progress)
    if not any(r.parts):
        # roadpilot's union tag sits where openpilot keeps `valid`: in openpilot's layout our messages read as its
        # first two members and nothing else
        ours = "; a roadpilot log? they read so" if r.read and set(r.read) <= ROADPILOT_LOOKALIKES else ""
        raise OpenpilotLogError(f"{sources[0]}: no can, sendcan, carState or carParams messages in {len(files)} "
                                f"file(s) ({'; '.join(d.what for d in r.damage) or dict(r.read)}{ours})")
    parts, staging, video_meta = _with_video(r, out, progress) if video else (r.parts, None, {"files": []})
    car = car or _known_or_none(r.log_car)
    meta = {"importer": "openpilot", "source": [os.path.abspath(p) for p in files],
            "messages_read": dict(r.read), "dropped": dict(r.dropped), "log_car": r.log_car, "video": video_meta,
            "problems": [f"{d.path}: {d.what}" for d in r.damage], **({"car": car} if car is not None else {})}
    n = sum(len(p) for p in parts)
    try:
        path = write_import(_reporting(_merged(parts), n, progress), os.path.basename(out), DEFAULT_SEGMENT_SECONDS,
                            meta, overwrite, root=os.path.dirname(out))
        if staging is not None:
            move_into(staging, path)
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return path, r.damage


def _known_or_none(car: str | None) -> str | None:
    try:
        return None if car is None else (_check_car(car) or car)
    except ValueError:
        return None  # an openpilot name opendbc here does not know: kept as log_car, not offered to replay


def main(argv: list[str] | None = None) -> int:
    """Exit status 0: imported (the route's path on stdout); 2: refused, or imported up to damage (one line on
    stderr either way; the route's path on stdout when one was written)."""
    paragraphs = __doc__.split("\n\n")
    ap = ToolArgumentParser(prog="python -m tools.importers.openpilot",
                            description=f"{paragraphs[0]}\n\n{paragraphs[2]}\n\n{paragraphs[-1]}")
    ap.add_argument("sources", nargs="+", metavar="ROUTE_OR_FILES",
                    help="an openpilot route folder, a segment folder, or rlog/qlog files (.bz2, .zst or raw)")
    ap.add_argument("--out", default=None, metavar="ROUTE_DIR",
                    help="the route folder to write (default: <data>/routes/<the route's name>)")
    ap.add_argument("--car", default=None, metavar="PLATFORM",
                    help="the opendbc platform (e.g. TOYOTA_RAV4) for route.json; default: the log's carParams")
    ap.add_argument("--force", action="store_true", help="replace the route folder when it exists")
    ap.add_argument("--no-video", action="store_true", help="leave the road video out (it takes most of the time)")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        path, damage = import_route(args.sources, args.out, args.car, args.force, not args.no_video,
                                    lambda text: print(f"openpilot: {text}", file=sys.stderr, flush=True))
    except (ValueError, OSError) as e:  # OpenpilotLogError, RouteExists, a bad --car, an unwritable folder
        print(f"openpilot import: {e}", file=sys.stderr)
        return 2
    print(path)
    if damage:
        more = f" (and {len(damage) - 1} more, listed in route.json)" if len(damage) > 1 else ""
        print(f"openpilot import: {damage[0].path}: {damage[0].what}{more}; the route holds everything readable up to "
              "the damage", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
