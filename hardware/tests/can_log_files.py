"""CAN logs written by the tests themselves with python-can's writers (no data file is committed), plus the edge
cases the formats document and the writers cannot make: comments (candump lines that do not start with "(",
ASC's "//", TRC's ";") and PEAK's CAN FD and remote frame lines (python-can's TRCWriter skips those frames).

What python-can 4.6.1 keeps of a frame, per format (read from its writers and readers):
    channel:        .log (as can<N>), .asc, .blf, .trc; not .csv, .db
    direction (Tx): .log, .asc, .blf, .trc; not .csv, .db
    error frames:   .log, .asc, .blf, .csv, .db; .trc not (the writer skips them, the reader ignores PEAK's)
    CAN FD flag:    .log, .asc, .blf, .trc; .csv and .db keep the data only
"""

import time
from dataclasses import dataclass
from pathlib import Path

import can
from can.util import len2dlc
from opendbc.car.can_definitions import CanData

from selfdrive.car.tests.helpers import SyntheticRav4

WRITTEN = (".log", ".asc", ".blf", ".trc", ".csv", ".db")
KEEPS_CHANNEL = frozenset({".log", ".asc", ".blf", ".trc"})
KEEPS_DIRECTION = KEEPS_CHANNEL
KEEPS_ERROR_FRAMES = frozenset({".log", ".asc", ".blf", ".csv", ".db"})
CANDUMP_BUSES = "can0:0,can1:1,can2:2"  # candump names channels can<N>: the map that puts them back

T0 = 100.0        # s, the first frame
BRAKE_AT = 1.3    # s into the drive: the brake is pressed from here on
DRIVE_S = 1.6     # card's fingerprint window takes 1 s of it


@dataclass(frozen=True)
class Rec:
    """One frame as a test writes it."""
    t: float
    bus: int
    address: int
    data: bytes = b""
    extended: bool = False
    fd: bool = False
    remote: bool = False
    error: bool = False
    tx: bool = False  # sent by the logging adapter itself

    def message(self) -> can.Message:
        return can.Message(timestamp=self.t, arbitration_id=self.address, is_extended_id=self.extended,
                           data=None if self.remote else self.data, dlc=4 if self.remote else None, is_fd=self.fd,
                           is_remote_frame=self.remote, is_error_frame=self.error, is_rx=not self.tx, channel=self.bus)


# Between the car's 10 ms steps (at .xx0 s): one of each edge case
EDGE_CASES = [
    Rec(T0 + 0.105, 1, 0x18DAF110, b"\x02\x10\x03", extended=True),  # extended id (a UDS answer) on bus 1
    Rec(T0 + 0.205, 2, 0x456, bytes(range(64)), fd=True),            # CAN FD, 64 bytes, on bus 2
    Rec(T0 + 0.305, 0, 0x2E4, b"\x01\x02\x03\x04\x05", tx=True),      # the logger's own STEERING_LKA
    Rec(T0 + 0.405, 0, 0x123, remote=True),                          # remote frame, DLC 4
    Rec(T0 + 0.505, 0, 0, error=True),                               # error frame
]


def rav4_drive(car: SyntheticRav4) -> list[Rec]:
    """DRIVE_S of a cruising RAV4 at 50 km/h (every message card reads, valid checksums), braking from BRAKE_AT."""
    return [Rec(t, bus, address, data)
            for t, bus, address, data in car.stream(DRIVE_S, brake=lambda t: t >= T0 + BRAKE_AT, t0=T0)]


def _insert(path: Path, lines: dict[int, str], newline: str = "\n") -> None:
    """Adds text lines before the given line numbers (0: the top; -1: before the last line)."""
    old = path.read_bytes().decode("latin-1").splitlines(keepends=True)
    for k in sorted(lines, key=lambda k: k % len(old), reverse=True):
        old.insert(k % len(old), lines[k] + newline)
    path.write_bytes("".join(old).encode("latin-1"))


def _trc_line(r: Rec, kind: str) -> str:
    """A PEAK TRC 2.1 line (columns N,O,T,B,I,d,R,L,D as TRCWriter declares them) for what TRCWriter skips."""
    data = " ".join(f"{b:02X}" for b in r.data)
    dlc = len2dlc(len(r.data)) if kind == "FD" else 4
    return f"{9999:>7} {(r.t - T0) * 1000:13.3f} {kind} {r.bus + 1:>2} {r.address:04X} Rx -  {dlc:<4} {data}"


def write_log(path: Path, recs: list[Rec]) -> Path:
    """`recs` as python-can writes the format of `path`'s suffix, then the format's documented edge cases."""
    suffix = path.suffix
    written = [r for r in recs if suffix != ".trc" or not (r.fd or r.remote or r.error)]
    with can.Logger(str(path)) as logger:
        for r in written:
            logger.on_message_received(r.message())
        if suffix == ".db":  # SqliteWriter.stop() writes one more batch and drops what is still queued: wait
            deadline = time.monotonic() + 20
            while logger.num_frames < len(written) and time.monotonic() < deadline:
                time.sleep(0.01)
    middle = len(path.read_bytes().splitlines()) // 2
    if suffix == ".log":  # canplayer takes a line that does not start with "(" for a comment
        _insert(path, {0: "# candump -L of a RAV4", middle: "", middle + 1: "  # a comment mid-log"})
    elif suffix == ".asc":
        _insert(path, {1: "// version 13.0.0", middle: "// a comment mid-log", -1: "// the last comment"})
    elif suffix == ".trc":
        extra = {middle: "; a comment mid-log"}
        extra |= {middle + 1 + i: _trc_line(r, "FD" if r.fd else "RR") for i, r in enumerate(recs) if r.fd or r.remote}
        _insert(path, extra, newline="\r\n")  # TRCWriter ends its lines so
    return path


def expected(suffix: str, recs: list[Rec], keep_sent: bool = False) -> tuple[list[CanData], dict[str, int], int]:
    """(frames canbridged publishes in time order, its garbage counts, frames the logger sent)
    for `recs` written as `suffix`. The logger's own frames are skipped, or with `keep_sent` on bus 128 + n, as the
    importer keeps them."""
    frames, garbage, sent = [], {}, 0
    for r in sorted(recs, key=lambda r: r.t):
        if r.error:
            if suffix in KEEPS_ERROR_FRAMES:
                garbage["error_frame"] = garbage.get("error_frame", 0) + 1
        elif r.remote:
            garbage["remote_frame"] = garbage.get("remote_frame", 0) + 1
        elif r.tx and suffix in KEEPS_DIRECTION:
            sent += 1
            if keep_sent:
                frames.append(CanData(r.address, r.data, r.bus + 128))
        else:
            frames.append(CanData(r.address, r.data, r.bus if suffix in KEEPS_CHANNEL else 0))
    return frames, garbage, sent


def replay_url(path: Path, **opts: str) -> str:
    """replay:<path> with the bus map candump needs, and `opts`."""
    if path.suffix == ".log":
        opts = {"bus": CANDUMP_BUSES, **opts}
    return f"replay:{path}" + ("?" + "&".join(f"{k}={v}" for k, v in opts.items()) if opts else "")
