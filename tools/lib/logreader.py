"""LogReader: the Events of a log file, segment or route, in time order.

    for ev in LogReader("2026-01-02--10-11-12/2:4"):   # or a path to rlog.zst, a segment or route folder
        ev.which(), ev.logMonoTime

Files are read zstd frame by frame and split into messages by their capnp framing header, so damage
costs only what it touches: a file cut short (a crash) reads up to its last complete message, a bad
frame in the middle is skipped (the reader re-syncs on the next frame's magic), a malformed message is
dropped. All of that is reported in `lr.truncated` / `lr.corrupt` (lists of (file, what was lost)) and
logged, never raised. A whole file that is unreadable inside a segment or route is reported in
`lr.skipped` and the rest is read. Only a source that is itself not a roadpilot log raises LogError.
"""

import bisect
import heapq
import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from operator import attrgetter

import zstandard

from cereal.messaging import MalformedMessage, log_from_bytes
from common.swaglog import cloudlog
from selfdrive.loggerd.framing import FramingError, message_size
from tools.lib.route import LOG_TYPES, Route, RouteError, split_selector

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHUNK = 64 * 1024
_time = attrgetter("logMonoTime")


class LogError(ValueError):
    """A source that is not a roadpilot log (or holds nothing readable). The message names the file."""


class _FileReport:
    """What reading one file lost, handed back to the LogReader."""

    def __init__(self, path: str, lr: "LogReader | None"):
        self.path, self.lr = path, lr  # lr None: a quiet look at the file, nothing recorded

    def add(self, kind: str, what: str) -> None:
        if self.lr is not None:
            getattr(self.lr, kind).append((self.path, what))
            cloudlog.warning(f"log {kind}", extra={"file": self.path, "what": what})


def _frames(data: bytes, report: _FileReport) -> Iterator[bytes]:
    """Decompressed contents of each good zstd frame. Bad frames are skipped (re-sync on the next magic)."""
    dctx = zstandard.ZstdDecompressor()
    mv = memoryview(data)
    pos, n = 0, len(data)
    while pos < n:
        start = pos
        dobj = dctx.decompressobj()
        out = []
        try:
            while not dobj.eof and pos < n:
                chunk = mv[pos:pos + CHUNK]
                out.append(dobj.decompress(chunk))
                pos += len(chunk)
        except zstandard.ZstdError as e:
            nxt = data.find(ZSTD_MAGIC, start + 1)
            nxt = n if nxt < 0 else nxt
            report.add("corrupt", f"bad zstd frame at byte {start} ({e}): skipped {nxt - start} bytes")
            pos = nxt
            yield b""  # marks the gap: a message cannot continue across it
            continue
        if dobj.eof:
            pos -= len(dobj.unused_data)
        else:
            report.add("truncated", f"last zstd frame incomplete: {n - start} compressed bytes at the end, "
                                    "what they hold up to the cut was read")
        yield b"".join(out)


def read_file(path: str, report: _FileReport) -> Iterator:
    """Every readable Event of one rlog/qlog file, in file order. Raises LogError when it is not a log."""
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        report.add("truncated", "empty file (writer stopped before its first flush)")
        return
    if data[:4] != ZSTD_MAGIC:
        raise LogError(f"{path}: not a roadpilot log (not zstd; starts with {data[:8]!r})")
    first, read, malformed = True, 0, 0
    pending = b""
    for frame in _frames(data, report):
        if not frame:
            if pending:
                report.add("corrupt", f"{len(pending)} bytes of a message cut by a bad frame dropped")
            pending = b""
            continue
        buf = pending + frame if pending else frame
        mv, off = memoryview(buf), 0
        while True:
            try:
                size = message_size(buf, off)
            except FramingError as e:
                if first:
                    raise LogError(f"{path}: not a roadpilot log (zstd, but not capnp Events: {e})") from None
                report.add("corrupt", f"bad message header ({e}): {len(buf) - off} bytes of a frame dropped")
                off = len(buf)
                break
            if size is None or off + size > len(buf):
                break
            try:
                ev = log_from_bytes(mv[off:off + size])
            except MalformedMessage as e:
                if first:
                    raise LogError(f"{path}: not a roadpilot log (zstd, but not capnp Events: {e})") from None
                malformed += 1
            else:
                read += 1
                yield ev
            first = False
            off += size
        pending = buf[off:]
    if pending:
        report.add("truncated", f"{len(pending)} bytes of an incomplete message at the end")
    if malformed:
        report.add("corrupt", f"{malformed} malformed messages dropped ({read} read)")


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
    """Events from a file, segment folder, route folder or `"<route>[/<selector>]"` (see tools/lib/route.py).

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
        # Reads only up to the first message, so `LogReader("notes.txt")` fails here, not mid-iteration.
        next(read_file(path, _FileReport(path, None)), None)

    def _file_events(self, path: str) -> Iterator:
        report = _FileReport(path, self)
        if not os.path.isfile(path):
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


def main(argv: list[str] | None = None) -> int:
    """`python -m tools.lib.logreader SOURCE [qlog]`: messages per service and what was lost."""
    argv = sys.argv[1:] if argv is None else argv
    lr = LogReader(argv[0], sort_by_time=False, log_type=argv[1] if len(argv) > 1 else "rlog")
    counts = Counter(ev.which() for ev in lr)
    for service, n in sorted(counts.items()):
        print(f"{service:20s} {n}")
    for path, what in lr.problems:
        print(f"PROBLEM {path}: {what}")
    return 1 if lr.problems else 0


if __name__ == "__main__":
    sys.exit(main())
