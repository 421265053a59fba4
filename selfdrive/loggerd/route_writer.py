"""Writes a route: `<routes_dir>/<route>/<segment>/rlog.zst` and `qlog.zst`.

Each log file is a sequence of independent zstd frames (each with a content checksum), one per flush.
A process killed mid-write leaves at most one incomplete frame at the end of the file; every earlier
frame still decompresses on its own, so a crash loses only what was buffered since the last flush.
Each frame holds whole messages, so a reader can also skip a damaged frame and go on with the next.

One route per run: the manager reserves the name (`new_route_dir`) and hands it to loggerd in ROUTE_ENV,
so a loggerd restarted after a crash continues the same route with the next segment number.

A failed write (disk full, read-only, I/O error) never raises out of the writer: it stops writing
(`writing` False, `error` says why), cuts the file back to its last whole frame, refuses messages while
stopped (nothing piles up in memory) and retries every RETRY_PERIOD with a fresh segment, so the route
reads cleanly up to the fault and again after it.

Latched services (cereal/services.py: carParams) are kept: every segment starts with a copy of their newest
message from before it, at the head of the segment's first frame and stamped with the earliest logMonoTime in that
frame (nothing else in the copy changes), so a segment read on its own, in time order or in file order, starts
with the car, and a route read whole keeps its times in order (LogReader merges segments by time: a copy with its
original stamp would land minutes back). The first one of a route is written where it arrives, like any message.
To a reader (replay, rerun, the drive report) a copy is one more carParams, as card sends every 50 s anyway.
"""

import contextlib
import datetime
import json
import math
import os
import re

import zstandard

from cereal.services import Service
from common import clock
from common.swaglog import cloudlog, log_due
from selfdrive.loggerd.framing import event_mono_time, restamped

ROUTE_ENV = "ROADPILOT_ROUTE"    # the run's route name, set by the manager for every child
ROUTE_NAME_FORMAT = "%Y-%m-%d--%H-%M-%S"
ROUTE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # one folder name: no '/', no '.' or '..'
FLUSH_PERIOD = 0.5               # s; the crash-loss bound is this plus one loop period, well under 1 s
MAX_BUFFERED = 8 * 1024 * 1024   # flush early when a burst fills this many bytes
ZSTD_LEVEL = 3                   # ~300 MB/s on one core: compression stays a rounding error of CPU
RETRY_PERIOD = 5.0               # s between tries to write again after a failure: a full disk is not freed in ms


class FrameWriter:
    """One .zst file, written as one complete zstd frame per flush straight to the OS (no Python buffer)."""

    def __init__(self, path: str, level: int = ZSTD_LEVEL):
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.cctx = zstandard.ZstdCompressor(level=level, write_checksum=True, write_content_size=True)
        self.buf: list[bytes] = []
        self.buffered = 0
        self.counted = 0          # messages in the buffer that were logged (not latched copies): what a failure loses
        self.written = 0          # bytes of whole frames in the file

    def add(self, dat: bytes) -> None:
        self.buf.append(dat)
        self.buffered += len(dat)
        self.counted += 1

    def prepend(self, dats: list[bytes]) -> None:
        """Puts `dats` ahead of the buffer, not counted as logged messages (latched copies)."""
        self.buf[:0] = dats
        self.buffered += sum(map(len, dats))

    def flush(self) -> int:
        """Writes the buffer as one frame and returns its size. On OSError the buffer is kept and re-raised."""
        if not self.buf:
            return 0
        frame = memoryview(self.cctx.compress(b"".join(self.buf)))
        done = 0
        try:
            while done < len(frame):
                done += os.write(self.fd, frame[done:])
        except OSError:
            # A part-written frame would end the file in garbage. Cutting it off needs no space (ENOSPC, EFBIG)
            # and leaves a file that reads cleanly to its last whole frame; if that fails too (EIO), a reader
            # still skips the partial frame.
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.written)
            raise
        self.buf.clear()
        self.buffered = self.counted = 0
        self.written += done
        return done

    def close(self) -> None:
        try:
            self.flush()
        finally:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def abandon(self) -> int:
        """Closes without writing (after a failure); returns how many buffered logged messages are lost."""
        lost = self.counted
        self.buf.clear()
        self.buffered = self.counted = 0
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            with contextlib.suppress(OSError):
                os.close(fd)
        return lost


def check_route_name(name: str) -> str:
    """`name` when it is a safe route folder name; else ValueError saying what is allowed."""
    if not ROUTE_NAME_RE.match(name):
        raise ValueError(f"bad route name {name!r}: use 1-100 characters from A-Z a-z 0-9 . _ -, "
                         "starting with a letter or digit (one folder name, no '/')")
    return name


def new_route_dir(root: str, base: str | None = None) -> tuple[str, str]:
    """Creates and returns (name, path) of a fresh route: `base` (default: the local time), `_2`, `_3`... when taken."""
    os.makedirs(root, exist_ok=True)
    if base is None:
        base = datetime.datetime.now().strftime(ROUTE_NAME_FORMAT)
    for i in range(1, 1000):
        name = base if i == 1 else f"{base}_{i}"
        try:
            os.mkdir(os.path.join(root, name))  # mkdir, not makedirs(exist_ok): two runs never share one
            return name, os.path.join(root, name)
        except FileExistsError:
            continue
    raise RuntimeError(f"no free route name for {base} under {root}")


def segment_numbers(path: str) -> list[int]:
    """The segment folders a route folder holds, sorted."""
    return sorted(int(d) for d in os.listdir(path)
                  if d.isascii() and d.isdigit() and os.path.isdir(os.path.join(path, d)))


def write_json_atomic(path: str, obj: dict) -> None:
    # Write then rename: a reader (or a crash) sees the old file or the new one, never half of one.
    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


class RouteWriter:
    """Segments, rlog (everything) and qlog (1 in `decimation` per service) for one route.

    `name` None: a fresh route under `root`. A name: `<root>/<name>`, created when missing; when it
    already holds segments (loggerd restarted within the run) recording continues after the last one.
    `log()` buffers; `update(now)` rolls to the next segment every `segment_seconds`, flushes a frame
    at least every FLUSH_PERIOD and, while stopped by a failure, retries. Times are monotonic seconds
    passed in by the caller. `latched`: the newest message of latched services from before this writer (what a
    restarted loggerd kept), so its first segment starts with them too.
    """

    def __init__(self, root: str, services: dict[str, Service], segment_seconds: float, now: float,
                 flush_period: float = FLUSH_PERIOD, name: str | None = None, latched: dict[str, bytes] | None = None):
        if segment_seconds <= 0:
            raise ValueError(f"segment_seconds must be positive, got {segment_seconds}")
        if name is not None:
            self.name, self.path = check_route_name(name), os.path.join(root, name)
        else:
            try:
                self.name, self.path = new_route_dir(root)
            except OSError:
                # No folder for now (disk read-only or full): keep the name; the retries create the folder.
                self.name = datetime.datetime.now().strftime(ROUTE_NAME_FORMAT)
                self.path = os.path.join(root, self.name)
        self.segment_seconds = segment_seconds
        self.flush_period = flush_period
        self.decimation = {s: v.decimation for s, v in services.items()}
        self.counts = dict.fromkeys(services, 0)   # per route, so the qlog keeps every Nth message of the drive
        self.latched_services = frozenset(s for s, v in services.items() if v.latched)
        self.latched = {s: dat for s, dat in (latched or {}).items() if s in self.latched_services}
        self.latched_due: dict[str, bytes] = {}  # the copies that head the open segment's first frame, still to write
        self.write_errors = 0
        self.bytes_written = 0
        self.lost = 0                 # messages accepted by log() whose frame could not be written
        self.writing = False
        self.error = ""
        self.resumed = False          # reopened after a failure; said in the log once a frame lands
        self.meta_written = False
        self.segment = -1
        self.next_segment: int | None = None   # known once the route folder has been read
        self.rlog: FrameWriter | None = None
        self.qlog: FrameWriter | None = None
        self.segment_start = self.last_flush = self.retry_at = now
        self._start(now)

    def segment_path(self, n: int | None = None) -> str:
        return os.path.join(self.path, str(self.segment if n is None else n))

    def _meta(self) -> dict:
        return {"name": self.name, "started": datetime.datetime.now().isoformat(timespec="seconds"),
                "segment_seconds": self.segment_seconds, "qlog_decimation": self.decimation,
                # the clock the daemons ran on (common.clock): "driven" under the lockstep simulator, where every
                # stamp is the world's time
                "clock": clock.kind(),
                "restarts": 0,        # loggerd starts after the first within this run (crash and restart)
                "format": "rlog.zst/qlog.zst: independent zstd frames of framed capnp log.Event messages"}

    def _write_meta(self) -> None:
        path = os.path.join(self.path, "route.json")
        try:
            with open(path) as f:
                meta = json.load(f)
        except FileNotFoundError:
            write_json_atomic(path, self._meta())
            return
        except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than Python recurses
            meta = None
        if not isinstance(meta, dict):
            cloudlog.warning("route.json unreadable: left as it is", extra={"route": self.name, "path": path})
            return
        # A restart within the run: what the first start recorded stays, the restart is counted.
        restarts = meta.get("restarts", 0)
        meta["restarts"] = (restarts if isinstance(restarts, int) else 0) + 1
        write_json_atomic(path, meta)

    def _start(self, now: float) -> None:
        """Starts (or restarts after a failure) writing: route folder, route.json, a fresh segment."""
        try:
            os.makedirs(self.path, exist_ok=True)
            if self.next_segment is None:
                self.next_segment = max(segment_numbers(self.path), default=-1) + 1
            if not self.meta_written:
                self._write_meta()
                self.meta_written = True
            self._open_segment(now)
        except OSError as e:
            self._stop(e, now + RETRY_PERIOD)
            return
        self.resumed = self.write_errors > 0
        self.writing, self.error = True, ""

    def _open_segment(self, now: float) -> None:
        self._close_files()
        n = self.next_segment
        os.makedirs(self.segment_path(n), exist_ok=True)  # exist_ok: a retry reuses a segment that never got a byte
        rlog = FrameWriter(os.path.join(self.segment_path(n), "rlog.zst"))
        try:
            qlog = FrameWriter(os.path.join(self.segment_path(n), "qlog.zst"))
        except OSError:
            rlog.abandon()
            raise
        self.rlog, self.qlog = rlog, qlog
        self.segment, self.next_segment = n, n + 1
        self.segment_start = self.last_flush = now
        self.latched_due = dict(self.latched)  # as they were when it opened: a newer one comes in its own place
        cloudlog.info("segment opened", extra={"route": self.name, "segment": self.segment,
                                               "path": self.segment_path()})

    def log(self, service: str, dat: bytes) -> bool:
        """Buffers one message (one framed Event); False (not kept) while writing is stopped."""
        if service in self.latched_services:
            self.latched[service] = dat  # also while stopped: the segment after the fault starts with the newest
        if not self.writing:
            return False
        self.rlog.add(dat)
        dec = self.decimation[service]
        if dec is not None:
            if self.counts[service] % dec == 0:
                self.qlog.add(dat)
            self.counts[service] += 1
        return True

    def _head_with_latched(self) -> None:
        """Puts the latched copies ahead of the segment's first frame, stamped with its earliest time (module doc)."""
        # the earliest, not the first: loggerd drains socket by socket, so the first message written may be younger
        # than one written after it
        t = min((t for t in map(event_mono_time, self.rlog.buf) if t is not None), default=None)
        if t is None:
            return  # no Event in it (loggerd never passes anything else): no time to stamp the copies with
        copies = {s: restamped(dat, t) for s, dat in self.latched_due.items()}
        # restamped() is None for a root laid out as only a hand-made Event is: with its old stamp it would break
        # the route's order, so it is not copied
        copies = {s: c for s, c in copies.items() if c is not None}
        self.rlog.prepend(list(copies.values()))
        # the qlog gets them whole, not as their 1-in-N: a segment's qlog is read on its own too
        self.qlog.prepend([c for s, c in copies.items() if self.decimation[s] is not None])

    def update(self, now: float) -> None:
        if not self.writing:
            if now >= self.retry_at:
                self._start(now)
            return
        try:
            if now - self.segment_start >= self.segment_seconds:
                self._open_segment(now)
            elif now - self.last_flush >= self.flush_period or self.rlog.buffered > MAX_BUFFERED:
                self._flush()
                self.last_flush = now
        except OSError as e:
            self._stop(e, now + RETRY_PERIOD)

    def _flush(self) -> None:
        if self.latched_due and self.rlog.buf:
            self._head_with_latched()
            self.latched_due = {}
        for w in (self.rlog, self.qlog):
            self.bytes_written += w.flush()
        if self.resumed and self.rlog.written:
            self.resumed = False
            cloudlog.info("logging resumed", extra={"route": self.name, "segment": self.segment})

    def _close_files(self) -> None:
        if self.rlog is None:
            return
        self._flush()
        for w in (self.rlog, self.qlog):
            w.close()
        self.rlog = self.qlog = None

    def _stop(self, e: OSError, retry_at: float) -> None:
        """A write, open or close failed: drop the open files and what they buffer, retry at `retry_at`."""
        self.write_errors += 1
        self.writing, self.error, self.retry_at = False, e.strerror or str(e), retry_at
        if self.rlog is not None:
            if self.rlog.written == 0 and self.qlog.written == 0:
                self.next_segment = self.segment  # nothing landed in it: the retry reuses the number, no empty segment
            self.lost += self.rlog.abandon()
            self.qlog.abandon()
            self.rlog = self.qlog = None
        if log_due(self.write_errors):
            cloudlog.error("log write failed: logging stopped", extra={
                "route": self.name, "segment": self.segment, "error": str(e), "errors_total": self.write_errors,
                "retry_in_s": RETRY_PERIOD})

    def close(self) -> None:
        try:
            self._close_files()
        except OSError as e:
            self._stop(e, math.inf)
        cloudlog.info("route closed", extra={"route": self.name, "last_segment": self.segment,
                                             "write_errors": self.write_errors, "lost": self.lost})
