"""LogReader: the Events of a log file, segment or route, in time order.

    for ev in LogReader("2026-01-02--10-11-12/2:4"):   # or a path to rlog.zst, a segment or route folder
        ev.which(), ev.logMonoTime

Files are read zstd frame by frame, each frame split into messages by their capnp framing header (writers put
whole messages in every frame), so damage costs only what it touches: a file cut short (a crash) reads up to its
last complete message, a damaged frame is skipped (the reader re-syncs on the next frame's magic, the file's first
frame included), a frame that would inflate past MAX_FRAME_BYTES is skipped without being inflated, a malformed
message is dropped, a message a frame holds only part of is dropped with the rest of that frame. All of that is
reported in `lr.truncated` / `lr.corrupt` (lists of (file, what was lost)) and logged, never raised. A whole file
that is unreadable inside a segment or route is reported in `lr.skipped` and the rest is read. Only a source that
is itself not a roadpilot log (no frame anywhere in it holds Events, or its first message is an
openpilot Event: OPENPILOT_LOOKALIKES) raises LogError.

`python -m selfdrive.loggerd.logreader SOURCE [rlog|qlog]` prints the messages per service and what was lost.
"""

import argparse
import bisect
import heapq
import math
import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from operator import attrgetter
from typing import NoReturn

import zstandard

from cereal.messaging import MalformedMessage, log_from_bytes
from common.swaglog import cloudlog
from selfdrive.loggerd.framing import MAX_MESSAGE_BYTES, FramingError, event_which, message_size
from selfdrive.loggerd.route import LOG_TYPES, Route, RouteError, split_selector
from selfdrive.loggerd.route_writer import MAX_BUFFERED

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# loggerd flushes a frame once more than MAX_BUFFERED bytes wait; what its last loop added on top is bounded
# here by the largest message it accepts. A frame that inflates past this is damage (or a zip bomb), not a log.
MAX_FRAME_BYTES = MAX_BUFFERED + MAX_MESSAGE_BYTES
# RFC 8878 (the zstd format): a frame header is at most 18 bytes; a block header is 3 bytes (bit 0 last block,
# bits 1-2 type, bits 3-23 size) and no block inflates to more than 128 KiB.
ZSTD_MAX_HEADER = 18
ZSTD_MAX_BLOCK = 128 * 1024
RAW_BLOCK, RLE_BLOCK, COMPRESSED_BLOCK = 0, 1, 2
FIND_WINDOW = 1 << 20         # bytes read at a time while searching for the next frame
_time = attrgetter("logMonoTime")
# openpilot's Events are framed as ours, and in our layout every one of them reads as `can` or `sendcan` (our union's
# tag sits where openpilot keeps `valid`, and the bits after it are unused there); its logs start with initData, a
# struct where our `can` holds a list. A file whose first message is such a malformed can/sendcan is refused as
# foreign instead of read as garbage CAN. Only the first: loggerd records whatever carries its socket's tag, so a
# malformed message inside a roadpilot log (or a first one of another service) is dropped and counted as usual.
OPENPILOT_LOOKALIKES = ("can", "sendcan")


class LogError(ValueError):
    """A source that is not a roadpilot log (or holds nothing readable). The message names the file."""


class _FileReport:
    """What reading one file lost, handed back to the LogReader. Findings are held until the file proves to be a
    log (its first Event, or the end of a log cut short): a file that is no log reports only that."""

    def __init__(self, path: str, lr: "LogReader | None"):
        self.path, self.lr = path, lr  # lr None: a quiet look at the file, nothing recorded
        self.held: list[tuple[str, str]] | None = []

    def add(self, kind: str, what: str) -> None:
        if self.held is not None:
            self.held.append((kind, what))
        elif self.lr is not None:
            getattr(self.lr, kind).append((self.path, what))
            cloudlog.warning(f"log {kind}", extra={"file": self.path, "what": what})

    def release(self) -> None:
        held, self.held = self.held or [], None
        for kind, what in held:
            self.add(kind, what)

    def discard(self) -> None:
        """Drops what was held: for a file that is no log, that says all."""
        self.held = None


def _frame_extent(data, start: int) -> tuple[int, int] | None:
    """(end, the most bytes it can inflate to) of the zstd frame at `start`, read from its block headers alone,
    so a frame is judged before it is inflated. `end` is past len(data) for a frame cut short. None when the
    bytes at `start` are no frame (a bad header, a reserved block type)."""
    n = len(data)
    head = data[start:start + ZSTD_MAX_HEADER]
    try:
        pos = start + zstandard.frame_header_size(head)
        checksum = zstandard.get_frame_parameters(head).has_checksum
    except zstandard.ZstdError:
        return (n + 1, 0) if n - start < ZSTD_MAX_HEADER else None  # the file may end inside the header
    most = 0
    while pos + 3 <= n:
        header = data[pos:pos + 3]
        if len(header) < 3:  # the file shrank while being read
            break
        b = int.from_bytes(header, "little")
        last, kind, size = b & 1, (b >> 1) & 3, b >> 3
        if kind == COMPRESSED_BLOCK:
            pos, most = pos + 3 + size, most + ZSTD_MAX_BLOCK
        elif kind in (RAW_BLOCK, RLE_BLOCK):
            pos, most = pos + 3 + (1 if kind == RLE_BLOCK else size), most + size  # RLE: one byte, `size` times
        else:
            return None
        if last:
            return pos + 4 * checksum, most
    return n + 1, most


def _next_frame(data, after: int) -> int:
    nxt = data.find(ZSTD_MAGIC, after)
    return len(data) if nxt < 0 else nxt


def _frames(data, report: _FileReport) -> Iterator[bytes]:
    """Decompressed contents of each good zstd frame; b"" marks a gap (bytes skipped up to the next frame's magic)."""
    dctx = zstandard.ZstdDecompressor()
    pos, n = 0, len(data)
    while pos < n:
        start, problem = pos, ""
        extent = _frame_extent(data, start) if data[start:start + 4] == ZSTD_MAGIC else None
        if extent is None:
            problem = "no zstd frame" if data[start:start + 4] != ZSTD_MAGIC else "bad zstd frame header"
        elif extent[1] > MAX_FRAME_BYTES:
            problem = (f"zstd frame too big (inflates to up to {extent[1]} bytes; "
                       f"a log frame is at most {MAX_FRAME_BYTES})")
        else:
            dobj = dctx.decompressobj()
            try:
                out = dobj.decompress(data[start:min(extent[0], n)])
            except zstandard.ZstdError as e:
                problem = f"bad zstd frame ({e})"
            else:
                if dobj.eof:
                    pos = min(extent[0], n) - len(dobj.unused_data)
                    yield out
                    continue
                if extent[0] > n and _next_frame(data, start + 1) == n:  # only the last frame can be cut short
                    report.add("truncated", f"last zstd frame incomplete: {n - start} compressed bytes at the end, "
                                            "what they hold up to the cut was read")
                    pos = n
                    yield out
                    continue
                problem = "incomplete zstd frame"
        pos = _next_frame(data, start + 1)
        report.add("corrupt", f"{problem} at byte {start}: skipped {pos - start} bytes")
        yield b""


class _FileBytes:
    """A file's bytes, read on demand (os.pread): a look at its first frame reads only that, and a file that shrinks
    while it is read (a writer undoing a failed write) just ends sooner, where a memory map would crash (SIGBUS)."""

    def __init__(self, fd: int):
        self.fd, self.size = fd, os.fstat(fd).st_size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, s: slice) -> bytes:
        start = max(0, s.start or 0)
        stop = self.size if s.stop is None else min(self.size, s.stop)
        return os.pread(self.fd, stop - start, start) if stop > start else b""

    def find(self, sub: bytes, start: int = 0) -> int:
        while start < self.size:
            i = self[start:start + FIND_WINDOW + len(sub) - 1].find(sub)  # windows overlap: a match across two is found
            if i >= 0:
                return start + i
            start += FIND_WINDOW
        return -1


def read_file(path: str, report: _FileReport) -> Iterator:
    """Every readable Event of one rlog/qlog file, in file order. Raises LogError when no frame in it holds Events
    (after the Events, if any: the file is read as it goes)."""
    with open(path, "rb") as f:
        data = _FileBytes(f.fileno())
        if not len(data):
            report.add("truncated", "empty file (writer stopped before its first flush)")
            report.release()
            return
        yield from _events(path, data, report)


def _events(path: str, data: _FileBytes, report: _FileReport) -> Iterator:
    read, malformed = 0, 0
    not_events = ""  # why the first frame that inflated did not hold an Event
    # Messages are parsed frame by frame: every writer of these logs (FrameWriter: loggerd, write_route) puts whole
    # messages in each frame, so a message left incomplete at a frame's end is damage, and carrying its bytes into
    # the next frames would let one bad size header inside an intact frame swallow every frame after it.
    pending = b""  # the incomplete message at the end of the last frame: damage, unless no frame follows (a cut)
    for frame in _frames(data, report):
        if pending:
            report.add("corrupt", f"{len(pending)} bytes of an incomplete message at the end of a zstd frame dropped")
            pending = b""
        if not frame:
            continue
        buf = frame
        mv, off = memoryview(buf), 0
        while True:
            try:
                size = message_size(buf, off)
            except FramingError as e:
                not_events = not_events or str(e)
                report.add("corrupt", f"bad message header ({e}): {len(buf) - off} bytes of a frame dropped")
                off = len(buf)
                break
            if size is None or off + size > len(buf):
                break
            try:
                ev = log_from_bytes(mv[off:off + size])
            except MalformedMessage as e:
                which = event_which(bytes(mv[off:off + size])) if read == malformed == 0 else None
                if which in OPENPILOT_LOOKALIKES:
                    raise LogError(f"{path}: not a roadpilot log (its first message reads as a malformed {which}, as "
                                   "an openpilot log's do: python -m tools.importers.openpilot)") from None
                not_events = not_events or str(e)
                malformed += 1
            else:
                if read == 0:
                    report.release()  # it is a log: what was lost before its first Event counts
                read += 1
                yield ev
            off += size
        pending = buf[off:]
    if pending:
        report.add("truncated", f"{len(pending)} bytes of an incomplete message at the end")
    if malformed:
        report.add("corrupt", f"{malformed} malformed messages dropped ({read} read)")
    if read == 0:
        cut_short = any(kind == "truncated" for kind, _ in report.held or [])
        if not_events or not cut_short:
            raise LogError(f"{path}: not a roadpilot log ({_why_not_a_log(data, not_events, report)})")
        report.release()  # a log cut before its first message was complete


def _why_not_a_log(data: _FileBytes, not_events: str, report: _FileReport) -> str:
    if not_events:
        return f"zstd, but not capnp Events: {not_events}"
    if data.find(ZSTD_MAGIC) < 0:
        return f"not zstd; starts with {data[:8]!r}"
    return f"no zstd frame in it holds Events; {report.held[0][1] if report.held else 'nothing read'}"


def _merge_sorted(segments: Iterable[list]) -> Iterator:
    """Per-segment sorted lists -> one time-ordered stream, holding about one segment in memory.

    A message near a segment boundary may carry an earlier logMonoTime than the end of the previous
    segment (it waited in a socket), so the tail of one segment is merged with the next. Exact as long
    as a message is logged within one segment length of its creation. Stable for equal times.
    """
    carry: list = []
    for cur in segments:
        if not cur:
            continue
        i = bisect.bisect_right(carry, cur[0].logMonoTime, key=_time)
        yield from carry[:i]
        carry = list(heapq.merge(carry[i:], cur, key=_time))
    yield from carry


class LogReader:
    """Events from a file, segment folder, route folder or `"<route>[/<selector>]"` (see selfdrive/loggerd/route.py).

    sort_by_time: yield in logMonoTime order across the whole source (stable); else in file order.
    services: only these services (also `lr.filter(services)`). log_type: "rlog" or "qlog" for folders.
    """

    def __init__(self, source: str | os.PathLike, sort_by_time: bool = True,
                 services: Iterable[str] | None = None, log_type: str = "rlog"):
        if log_type not in LOG_TYPES:
            raise ValueError(f"log_type must be one of {LOG_TYPES}, got {log_type!r}")
        self.source = os.fspath(source)
        self.sort_by_time = sort_by_time
        self.services = None if services is None else frozenset(services)
        self.files = self._resolve(self.source, log_type)
        self.truncated: list[tuple[str, str]] = []
        self.corrupt: list[tuple[str, str]] = []
        self.skipped: list[tuple[str, str]] = []
        if len(self.files) == 1 and os.path.isfile(self.source):
            self._check_is_log(self.files[0])

    @staticmethod
    def _resolve(source: str, log_type: str) -> list[str]:
        if os.path.isfile(source):
            return [source]
        if os.path.isdir(source) and any(os.path.exists(os.path.join(source, f"{t}.zst")) for t in LOG_TYPES):
            return [os.path.join(source, f"{log_type}.zst")]  # a segment folder
        name, selector = split_selector(source)
        try:
            route = Route(name)
            segments = route.select(selector)
        except RouteError as e:
            raise LogError(str(e)) from None
        if not segments:
            raise LogError(f"{source}: no segments selected (route {route.name} has "
                           f"{[s.number for s in route.segments]})")
        return [s.log_path(log_type) for s in segments]

    def _check_is_log(self, path: str) -> None:
        # So `LogReader("notes.txt")` fails here, not mid-iteration. A log is read up to its first Event (its first
        # good frame); a file that is none is searched to its end for a frame, inflating only what is one.
        it = read_file(path, _FileReport(path, None))
        try:
            next(it, None)
        finally:
            it.close()

    def _file_events(self, path: str) -> Iterator:
        report = _FileReport(path, self)
        if not os.path.isfile(path):
            report.release()
            report.add("skipped", "missing")
            return
        it = read_file(path, report)
        try:
            for ev in it:
                if self.services is None or ev.which() in self.services:
                    yield ev
        except (LogError, OSError) as e:
            if len(self.files) == 1:
                raise
            report.discard()
            report.add("skipped", str(e))

    def __iter__(self) -> Iterator:
        self.truncated, self.corrupt, self.skipped = [], [], []
        if self.sort_by_time:
            events = _merge_sorted(sorted(self._file_events(p), key=_time) for p in self.files)
        else:
            events = (ev for p in self.files for ev in self._file_events(p))
        n = 0
        for ev in events:
            n += 1
            yield ev
        if n == 0 and self.skipped and len(self.skipped) == len(self.files):
            raise LogError(f"{self.source}: no readable log: " + "; ".join(f"{p}: {w}" for p, w in self.skipped))

    def filter(self, services: Iterable[str]) -> Iterator:
        want = frozenset(services)
        return (ev for ev in self if ev.which() in want)

    @property
    def problems(self) -> list[tuple[str, str]]:
        """Everything the last iteration reported, truncations, corruption and skipped files together."""
        return self.truncated + self.corrupt + self.skipped


# -- The command line of the route tools (this one, plot, render, replay, rerun, the importers): a refused input
# is one line on stderr and exit status 2, before any work, and never a traceback.

class ToolArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr (the usage itself is what --help prints), status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def finite_float(text: str) -> float:
    """argparse type: a number, neither nan nor inf (float() takes both)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return v


def output_file(*extensions: str):
    """argparse type: a file to write, named with one of `extensions`, in a folder that exists. Checked before the
    work, and the path the tool prints at the end is the one it wrote (savefig would add .png to a bare name)."""
    def check(text: str) -> str:
        if os.path.isdir(text):
            example = os.path.join(text, "out" + extensions[0])
            raise argparse.ArgumentTypeError(f"{text} is a folder: name the file to write (e.g. {example})")
        if os.path.splitext(text)[1].lower() not in extensions:
            raise argparse.ArgumentTypeError(f"{text}: the file name must end in {' or '.join(extensions)}")
        folder = os.path.dirname(os.path.abspath(text))
        if not os.path.isdir(folder):
            raise argparse.ArgumentTypeError(f"{text}: no such folder {folder}")
        return text
    return check


def main(argv: list[str] | None = None) -> int:
    """Messages per service and what was lost. Exit status 0: all read; 1: read, with the damage listed (PROBLEM
    lines); 2: nothing readable, or bad arguments (one line on stderr)."""
    ap = ToolArgumentParser(prog="python -m selfdrive.loggerd.logreader",
                            description="Messages per service of a log file, segment or route, and what damage cost.")
    ap.add_argument("source", help="log file, segment or route folder, route name or name/segments (e.g. name/2:4)")
    ap.add_argument("log_type", nargs="?", choices=LOG_TYPES, default="rlog", help="for folders and routes (rlog)")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        lr = LogReader(args.source, sort_by_time=False, log_type=args.log_type)
        counts = Counter(ev.which() for ev in lr)
    except (LogError, OSError) as e:
        print(f"logreader: {e}", file=sys.stderr)
        return 2
    for service, n in sorted(counts.items()):
        print(f"{service:20s} {n}")
    for path, what in lr.problems:
        print(f"PROBLEM {path}: {what}")
    return 1 if lr.problems else 0


if __name__ == "__main__":
    sys.exit(main())
