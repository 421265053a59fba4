"""CAN logs that python-can reads, as timed frames for canbridged's replay backend and the route importer.

The format comes from the file name, as python-can's `can.LogReader` picks it (`NAME.<suffix>.gz` too, for
the text formats and .blf):
    .log  candump -L (can-utils); a line that does not start with "(" is a comment, as canplayer takes it
    .asc  Vector ASCII     .blf  Vector binary     .trc  PEAK     .csv / .db  python-can's CSV and SQLite
    .mf4  ASAM MDF4 (only where the asammdf package is installed; it is not a dependency)

Buses. Each frame's channel becomes a roadpilot bus number (0 powertrain, 1 radar, 2 camera, as the car ports
number them). A numbered channel counts from 0 as python-can reads it (Vector's and PEAK's "channel 1" is 0);
a frame whose log names no channel (.csv, .db, candump's error frames) is bus 0; a log whose only named
channel is, say, can0 puts it on bus 0. Anything else needs a map, `can0:0,can1:2` (channel as the log names
it, or its number counted from 0, then the bus): with a map, a channel left out of it is skipped and counted.
A frame the log marks as transmitted (Tx: sent by the logging adapter itself) goes to bus 128 + n, roadpilot's
bus for what the assistant sent, so replay skips it and the importer keeps it apart from the car's frames.

Frames are kept as the log has them: error and remote frames with their flags, so that `classify` counts them
where they are dropped (canbridged's rx garbage, the importer's summary); CAN FD frames with all their data
(.csv and .db do not store the FD flag, so a frame longer than 8 bytes is taken for CAN FD); extended ids
with their flag. Frames come out in time order (a stable sort: equal times keep the log's order).

A file that is missing, empty, of an unknown kind, cut short or unreadable raises CanLogError, one line that
says why. "Cut short" is what the bytes can tell: a text log whose last line has no line end, an ASC trigger
block that never ends, a BLF file shorter than its header says, a gzip stream that stops early.
"""

import contextlib
import gzip
import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO

import numpy as np

from hardware.can_backends import MAX_BUS, BackendError, RawFrame

SENT_BUS_OFFSET = MAX_BUS + 1  # buses 128 + n: frames sent on bus n by whoever recorded (see can_backends)
FORMATS = {".log": "candump -L log", ".asc": "Vector ASC log", ".blf": "Vector BLF log", ".trc": "PEAK TRC log",
           ".csv": "python-can CSV log", ".db": "python-can SQLite log", ".mf4": "ASAM MDF4 log"}
PROGRESS_EVERY = 100_000  # frames between progress reports while reading
BINARY = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")  # control characters no text log holds


class CanLogError(BackendError):
    """A CAN log that cannot be read; the message (one line) names the file and says why."""


@dataclass
class CanLog:
    """A log's frames in time order. `buses`: the log's channels (as text, "" for none) and the bus each went to,
    None for a channel the map leaves out; `skipped`: frames of those channels; `sent`: frames marked Tx;
    `warnings`: what python-can's reader said while reading (a line it could not parse and skipped, ...)."""
    path: str
    format: str
    times: np.ndarray
    frames: list[RawFrame]
    buses: dict[str, int | None] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    warnings: list[str] = field(default_factory=list)


def _readers() -> dict:
    from can.io.player import MESSAGE_READERS  # imported here: python-can loads slowly, and only logs need it
    return MESSAGE_READERS


def log_suffix(path: str) -> tuple[str, bool]:
    """(format suffix, gzipped) of a file name: 'a.asc' -> ('.asc', False), 'a.asc.gz' -> ('.asc', True)."""
    root, suffix = os.path.splitext(path.lower())
    if suffix == ".gz":
        return os.path.splitext(root)[1], True
    return suffix, False


def is_can_log(path: str) -> bool:
    """Whether the file name says python-can reads it (anything else is for roadpilot's own readers)."""
    return log_suffix(path)[0] in _readers()


def parse_bus_map(text: str) -> dict[str, int]:
    """'can0:0,can1:2' -> {'can0': 0, 'can1': 2}. The bus is after the last ':' (channel names may hold one)."""
    out: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        channel, colon, bus = part.rpartition(":")
        if not colon or not channel or not (bus.isascii() and bus.isdigit()) or int(bus) > MAX_BUS:
            raise CanLogError(f"bus map {text!r}: expected channel:bus pairs with buses 0..{MAX_BUS}, "
                              f"e.g. can0:0,can1:2 (got {part!r})")
        if channel in out:
            raise CanLogError(f"bus map {text!r}: channel {channel!r} given twice")
        out[channel] = int(bus)
    return out


class _TextLines:
    """A text log's lines as python-can's reader takes them, watching for what says the file was cut short or is
    no text at all. python-can's candump reader fails on a comment line, which canplayer skips: skipped here."""

    def __init__(self, f: IO[str], suffix: str, what: str):
        self.f, self.suffix, self.what = f, suffix, what
        self.n = 0
        self.last = "\n"
        self.open_block = False  # an ASC "Begin Triggerblock" not yet closed by "End TriggerBlock"

    def __iter__(self) -> Iterator[str]:
        return self  # the readers take a header, then the body (CSV's with next()): each goes on where the file is

    def __next__(self) -> str:
        while True:
            line = next(self.f)
            self.n += 1
            if self.n == 1:
                line = line.removeprefix("\xef\xbb\xbf")  # a UTF-8 byte-order mark, read as Latin-1
            if BINARY.search(line):
                raise CanLogError(f"not a {self.what}: line {self.n} holds binary data")
            self.last = line
            if self.suffix == ".log" and not line.startswith("("):
                continue
            if self.suffix == ".asc":
                low = line.strip().lower()
                if low.startswith("begin triggerblock"):
                    self.open_block = True
                elif low.startswith("end triggerblock"):
                    self.open_block = False
            return line

    def close(self) -> None:
        self.f.close()

    def cut_short(self) -> str | None:
        if self.last.strip() and not self.last.endswith("\n"):
            return f"its last line has no line end ({self.last.strip()[:60]!r})"
        if self.open_block:
            return "its trigger block has no End TriggerBlock"
        return None


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage()[:200])


@contextlib.contextmanager
def _python_can_warnings() -> Iterator[list[str]]:
    """python-can's readers log what they skip as warnings, which would go to stderr as bare lines (its loggers have
    no handler): collected here instead, to be reported with the log."""
    logger, collect = logging.getLogger("can"), _Collect()
    logger.addHandler(collect)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield collect.lines
    finally:
        logger.removeHandler(collect)
        logger.propagate = propagate


def _open(path: str, suffix: str, gz: bool):
    """(python-can reader, _TextLines or None) for the file."""
    from can.io.generic import BinaryIOMessageReader, TextIOMessageReader
    reader_cls = _readers()[suffix]
    if issubclass(reader_cls, TextIOMessageReader):
        # the formats' syntax is ASCII; Latin-1 decodes every byte, so a comment in any 8-bit code page reads
        f = (gzip.open if gz else open)(path, "rt", encoding="latin-1")
        lines = _TextLines(f, suffix, FORMATS.get(suffix, suffix))
        return reader_cls(lines), lines
    if gz:
        if not issubclass(reader_cls, BinaryIOMessageReader):
            raise CanLogError(f"a compressed {FORMATS.get(suffix, suffix)} cannot be read: gunzip it first")
        return reader_cls(gzip.open(path, "rb")), None
    return reader_cls(path), None


def _read(path: str, suffix: str, gz: bool, progress: Callable[[str], None] | None) -> list:
    """[(t, channel, is_rx, RawFrame on bus 0)] in the log's order. CanLogError for a file cut short (also where
    the cut line is what python-can fails on); python-can's own exceptions for anything else."""
    rows = []
    reader, lines = _open(path, suffix, gz)
    with reader:
        if suffix == ".blf" and not gz and os.path.getsize(path) < reader.file_size:
            raise CanLogError(f"cut short, {os.path.getsize(path)} bytes where its header says {reader.file_size}")
        try:
            for m in reader:
                data = bytes(m.data) if m.data is not None else b""
                channel = m.channel
                if suffix == ".trc" and isinstance(channel, int):
                    channel -= 1  # python-can keeps PEAK's bus numbers, which count from 1 (ASC's, BLF's it shifts)
                rows.append((float(m.timestamp), channel, m.is_rx,
                             RawFrame(m.arbitration_id, data, 0, m.is_extended_id, m.is_error_frame,
                                      m.is_fd or len(data) > 8, m.is_remote_frame)))
                if progress is not None and len(rows) % PROGRESS_EVERY == 0:
                    progress(f"read {len(rows)} frames")
        except CanLogError:
            raise
        except Exception:  # noqa: BLE001 - whatever python-can raised, a cut last line says more
            if lines is not None and (cut := lines.cut_short()) is not None:
                raise CanLogError(f"cut short, {cut}") from None
            raise
    cut = lines.cut_short() if lines is not None else None
    if cut is not None:
        raise CanLogError(f"cut short, {cut}")
    return rows


def _channel_buses(channels: set, bus_map: dict[str, int] | None, path: str) -> dict:
    """channel (as python-can gives it) -> bus, None where a map leaves it out; CanLogError where none fits."""
    named = sorted(str(c) for c in channels if c is not None)
    if bus_map is not None:
        unknown = sorted(set(bus_map) - set(named))
        if unknown:
            raise CanLogError(f"{path}: bus map names channel(s) {', '.join(unknown)} that the log does not have "
                              f"(its channels: {', '.join(named) or 'none'})")
        return {c: 0 if c is None else bus_map.get(str(c)) for c in channels}
    out = {}
    only_one = len(channels - {None}) == 1
    for c in channels:
        if c is None:
            out[c] = 0
        elif isinstance(c, int) and 0 <= c <= MAX_BUS:
            out[c] = c
        elif isinstance(c, str) and only_one:
            out[c] = 0
        else:
            example = ",".join(f"{n}:{i}" for i, n in enumerate(named))
            raise CanLogError(f"{path}: channels {', '.join(named)} have no bus numbers of their own: say which bus "
                              f"each is with a bus map, e.g. {example} (replay's ?bus=, the importer's --bus)")
    return out


def read_can_log(path: str, bus_map: dict[str, int] | None = None,
                 progress: Callable[[str], None] | None = None) -> CanLog:
    """The frames of the CAN log at `path`, on roadpilot's buses (see the module doc). Raises CanLogError."""
    suffix, gz = log_suffix(path)
    what = FORMATS.get(suffix, f"{suffix} log")
    if suffix not in _readers():
        raise CanLogError(f"{path}: not a CAN log python-can reads (by its name: {', '.join(sorted(_readers()))}, "
                          f"or one of them .gz)")
    if not os.path.isfile(path):
        raise CanLogError(f"{path}: {'no such file' if not os.path.exists(path) else 'not a file'}")
    if os.path.getsize(path) == 0:
        raise CanLogError(f"{path}: empty file")
    try:
        with _python_can_warnings() as warnings:
            rows = _read(path, suffix, gz, progress)
    except CanLogError as e:
        raise CanLogError(f"{path}: {e}") from None
    except Exception as e:  # noqa: BLE001 - python-can's parsers raise whatever the bytes lead them into
        # (ValueError, struct.error, zlib.error, sqlite3.Error, EOFError, IndexError, NotImplementedError for a
        # missing asammdf, ...): for the caller each means the same thing, a file it cannot use
        kind = type(e).__name__ if type(e).__name__ != "error" else f"{type(e).__module__}.error"  # struct.error
        raise CanLogError(f"{path}: not a readable {what} ({kind}: {str(e).strip()[:200]})") from None
    if not rows:
        raise CanLogError(f"{path}: no CAN frames in it (empty, or not a {what})")
    times = np.array([r[0] for r in rows])
    if not np.isfinite(times).all():
        k = int(np.flatnonzero(~np.isfinite(times))[0])
        raise CanLogError(f"{path}: frame {k} has no usable time ({times[k]})")
    channels = {r[1] for r in rows}
    buses = _channel_buses(channels, bus_map, path)
    kept_times, frames, skipped, sent = [], [], Counter(), 0
    for i in np.argsort(times, kind="stable").tolist():
        t, channel, is_rx, raw = rows[i]
        bus = buses[channel]
        if bus is None:
            skipped[str(channel)] += 1
            continue
        if not is_rx:
            bus, sent = bus + SENT_BUS_OFFSET, sent + 1
        kept_times.append(t)
        frames.append(raw._replace(src=bus))
    if not frames:
        raise CanLogError(f"{path}: the bus map skips every frame (channels: {', '.join(sorted(skipped))})")
    return CanLog(path, what, np.array(kept_times), frames,
                  {"" if c is None else str(c): b for c, b in buses.items()}, dict(skipped), sent, warnings)
