"""Writes a route: `<routes_dir>/<route>/<segment>/rlog.zst` and `qlog.zst`.

Each log file is a sequence of independent zstd frames (each with a content checksum), one per flush.
A process killed mid-write leaves at most one incomplete frame at the end of the file; every earlier
frame still decompresses on its own, so a crash loses only what was buffered since the last flush.
Each frame holds whole messages, so a reader can also skip a damaged frame and go on with the next.
"""

import datetime
import json
import os

import zstandard

from cereal.services import Service
from common.realtime import world_waits
from common.swaglog import cloudlog

ROUTE_NAME_FORMAT = "%Y-%m-%d--%H-%M-%S"
FLUSH_PERIOD = 0.5               # s; the crash-loss bound is this plus one loop period, well under 1 s
MAX_BUFFERED = 8 * 1024 * 1024   # flush early when a burst fills this many bytes
ZSTD_LEVEL = 3                   # ~300 MB/s on one core: compression stays a rounding error of CPU


class FrameWriter:
    """One .zst file, written as one complete zstd frame per flush straight to the OS (no Python buffer)."""

    def __init__(self, path: str, level: int = ZSTD_LEVEL):
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.cctx = zstandard.ZstdCompressor(level=level, write_checksum=True, write_content_size=True)
        self.buf: list[bytes] = []
        self.buffered = 0
        self.written = 0

    def add(self, dat: bytes) -> None:
        self.buf.append(dat)
        self.buffered += len(dat)

    def flush(self) -> None:
        if not self.buf:
            return
        frame = memoryview(self.cctx.compress(b"".join(self.buf)))
        self.buf.clear()
        self.buffered = 0
        while frame:
            n = os.write(self.fd, frame)
            frame = frame[n:]
            self.written += n

    def close(self) -> None:
        try:
            self.flush()
        finally:
            os.close(self.fd)


def new_route_dir(root: str, base: str | None = None) -> tuple[str, str]:
    """Creates and returns (name, path) of a fresh route: `base` (default: the local time), `_2`, `_3`... when taken."""
    os.makedirs(root, exist_ok=True)
    if base is None:
        base = datetime.datetime.now().strftime(ROUTE_NAME_FORMAT)
    for i in range(1, 1000):
        name = base if i == 1 else f"{base}_{i}"
        try:
            os.mkdir(os.path.join(root, name))  # mkdir, not makedirs(exist_ok): two loggerds never share one
            return name, os.path.join(root, name)
        except FileExistsError:
            continue
    raise RuntimeError(f"no free route name for {base} under {root}")


class RouteWriter:
    """Segments, rlog (everything) and qlog (1 in `decimation` per service) for one route.

    `log()` buffers; `update(now)` rolls to the next segment every `segment_seconds` and flushes a
    frame at least every FLUSH_PERIOD. Times are monotonic seconds passed in by the caller.
    """

    def __init__(self, root: str, services: dict[str, Service], segment_seconds: float, now: float,
                 flush_period: float = FLUSH_PERIOD):
        if segment_seconds <= 0:
            raise ValueError(f"segment_seconds must be positive, got {segment_seconds}")
        self.name, self.path = new_route_dir(root)
        self.segment_seconds = segment_seconds
        self.flush_period = flush_period
        self.decimation = {s: v.decimation for s, v in services.items()}
        self.counts = dict.fromkeys(services, 0)   # per route, so the qlog keeps every Nth message of the drive
        self.write_errors = 0
        self.segment = -1
        self.rlog: FrameWriter | None = None
        self.qlog: FrameWriter | None = None
        meta = {"name": self.name, "started": datetime.datetime.now().isoformat(timespec="seconds"),
                "segment_seconds": segment_seconds, "qlog_decimation": self.decimation,
                # how the daemons were paced (a re-run of them must be paced the same way: tools/replay/rerun.py)
                "sim_lockstep": world_waits(),
                "format": "rlog.zst/qlog.zst: independent zstd frames of framed capnp log.Event messages"}
        with open(os.path.join(self.path, "route.json"), "w") as f:
            json.dump(meta, f, indent=1)
        self._open_segment(now)

    def segment_path(self, n: int | None = None) -> str:
        return os.path.join(self.path, str(self.segment if n is None else n))

    def _open_segment(self, now: float) -> None:
        self._close_files()
        self.segment += 1
        os.makedirs(self.segment_path())
        self.rlog = FrameWriter(os.path.join(self.segment_path(), "rlog.zst"))
        self.qlog = FrameWriter(os.path.join(self.segment_path(), "qlog.zst"))
        self.segment_start = self.last_flush = now
        cloudlog.info("segment opened", extra={"route": self.name, "segment": self.segment,
                                               "path": self.segment_path()})

    def log(self, service: str, dat: bytes) -> None:
        self.rlog.add(dat)
        dec = self.decimation[service]
        if dec is not None:
            if self.counts[service] % dec == 0:
                self.qlog.add(dat)
            self.counts[service] += 1

    def update(self, now: float) -> None:
        if now - self.segment_start >= self.segment_seconds:
            self._open_segment(now)
        elif now - self.last_flush >= self.flush_period or self.rlog.buffered > MAX_BUFFERED:
            self.flush()
            self.last_flush = now

    def flush(self) -> None:
        for w in (self.rlog, self.qlog):
            try:
                w.flush()
            except OSError as e:
                # Disk full or gone: this frame is lost (a reader skips a partial one), the daemon lives on.
                self.write_errors += 1
                if self.write_errors & (self.write_errors - 1) == 0:
                    cloudlog.error("log write failed", extra={"path": w.path, "error": str(e),
                                                              "errors_total": self.write_errors})

    def _close_files(self) -> None:
        if self.rlog is None:
            return
        self.flush()
        for w in (self.rlog, self.qlog):
            try:
                w.close()
            except OSError as e:
                cloudlog.error("log close failed", extra={"path": w.path, "error": str(e)})
        self.rlog = self.qlog = None

    def close(self) -> None:
        self._close_files()
        cloudlog.info("route closed", extra={"route": self.name, "segments": self.segment + 1})
