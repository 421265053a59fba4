"""CAN backends: where canbridged's frames come from and go to, chosen by a URL-like string.

    <interface>:<channel>[,<channel>...][?key=value&...]
        any python-can interface (socketcan:can0, slcan:/dev/ttyACM0, pcan:PCAN_USBBUS1, gs_usb:0, ...). The
        i-th channel is bus i in the car port's convention (0 powertrain, 1 radar, 2 camera);
        `socketcan:0=can0,2=can1` names the buses explicitly. Query keys are passed to `can.Bus`
        (bitrate=500000, fd=true, ...). Without an adapter, `udp_multicast:239.74.163.2` (a multicast group;
        `?port=` picks another port) connects processes on this machine or LAN: every process that opens the
        same group and port is on one bus. python-can's `virtual` interface connects buses of one process only.
    replay:<path>[?dbc=<name>&dbc<N>=<name>&bus=<map>&start=<s>|gate=<file>&rate=<x>&offset=<s>&duration=<s>&loop=1]
        recorded frames, delivered at their recorded pace, from
          - a CAN log python-can reads, known by its file name: candump -L .log, Vector .asc/.blf, PEAK .trc,
            python-can .csv/.db, .mf4 with asammdf, or one of them .gz (hardware/can_logs.py). `bus` maps the
            log's channels to buses (bus=can0:0,can1:2); by default a numbered channel is its bus, counted from
            0, and a log without channel names is bus 0. Error and remote frames are replayed as such (canbridged
            counts and drops them), frames the log marks Tx (the logger's own) are skipped like 128+ below;
          - a comma2k19 `raw_can` folder (or a segment folder holding processed_log/CAN/raw_can);
          - a roadpilot log/segment/route (its `can` messages).
        Only the car's own frames (bus < 128) are replayed; the recorded transmissions (128+) are not
        the car's and are skipped. `start` pins recorded time `offset` to that CLOCK_MONOTONIC second
        (to line a replay up with other replayed streams); `gate` waits for that file to appear and takes
        the start second from it (so whoever starts several processes can say "go" once all are up;
        write it whole, e.g. by renaming a temporary file);
        `dbc` restores frame lengths a comma2k19 recording lost.
        There is no car behind a replay: frames sent to it go nowhere (canbridged still logs and echoes them).
    sim
        the simulator's car (tools/sim/bridge.py), reached through the run directory (hardware/sim_backend.py).

A backend returns raw frames as it got them (`RawFrame`); `classify` decides what is a frame and what is
garbage, so every backend's garbage is counted the same way. A frame that passed is opendbc's `CanData`
(address, dat, src), the type the car port and the `can` message's CanData struct use.
"""

import math
import os
import time
import tokenize
import urllib.parse
from collections import deque
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from opendbc.car.can_definitions import CanData

from common.swaglog import cloudlog

MAX_STD_ADDRESS = 0x7FF
MAX_EXT_ADDRESS = 0x1FFFFFFF
CAN_FD_LENGTHS = frozenset((0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64))
MAX_BUS = 127         # buses 128+ are our own transmissions echoed back
MAX_RECV_PER_CALL = 10_000  # frames taken from one channel per call, so a flooding bus cannot stall the loop
# python-can's udp_multicast bus gets its own frames back (the kernel loops multicast to every member on this
# machine, the sender's socket too), which no CAN adapter does: canbridged would take its own transmissions for the
# car's frames, and opendbc's relay check for a stock ECU's. Those copies are dropped (PythonCanBackend._own_copy).
LOOPS_OWN_FRAMES = frozenset({"udp_multicast"})
OWN_COPY_WAIT_S = 1.0  # a copy of our own frame that has not come back by then never will (UDP may drop it)
OWN_COPY_KEYS = 4096   # distinct frames awaited at once before the expired ones are forgotten


class BackendError(RuntimeError):
    """A backend that cannot be opened or used; the message says what to do about it."""


class RawFrame(NamedTuple):
    """One frame as a backend received it, before any checks: a CanData (same field names) plus the adapter's
    flags, which a checked frame does not have. Nothing is known of it yet (the address may not be a CAN id,
    the data may be too long); `classify` turns it into a CanData or garbage."""
    address: int
    dat: bytes
    src: int
    is_extended: bool = False
    is_error: bool = False
    is_fd: bool = False
    is_remote: bool = False


def classify(raw: RawFrame) -> tuple[CanData | None, str | None]:
    """(frame, None) for a well-formed frame; (None, reason) for garbage, reason being a counter name."""
    if raw.is_error:
        return None, "error_frame"
    if raw.is_remote:
        return None, "remote_frame"
    if not isinstance(raw.address, int) or raw.address < 0 or \
       raw.address > (MAX_EXT_ADDRESS if raw.is_extended else MAX_STD_ADDRESS):
        return None, "bad_address"
    n = len(raw.dat)
    if (raw.is_fd and n not in CAN_FD_LENGTHS) or (not raw.is_fd and n > 8):
        return None, "bad_length"
    if not 0 <= raw.src <= MAX_BUS:
        return None, "bad_bus"
    return CanData(raw.address, bytes(raw.dat), raw.src), None


class Backend:
    """What canbridged needs from an adapter. `recv` never blocks; `send` raises BackendError on failure."""

    url = ""
    # None: canbridged publishes `can` on its own 10 ms tick. A socket: the bus has its own clock (the lockstep
    # simulator's car, hardware/sim_backend.py): canbridged publishes one `can` each time the socket has a step
    # ready, and `recv` then returns that one step
    step_socket = None

    def recv(self) -> list[RawFrame]:
        raise NotImplementedError

    def send(self, frame: CanData) -> None:
        raise NotImplementedError

    def end_sendcan(self, stamp_ns: int) -> None:
        """Everything of the `sendcan` stamped `stamp_ns` that the safety layer let through has been sent."""

    def close(self) -> None:
        pass


def _query_value(v: str):
    """Query strings are text; python-can wants ints, floats and bools where they are meant."""
    low = v.lower()
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return v


def _is_number(s: str) -> bool:
    return s.isascii() and s.isdigit()  # str.isdigit() alone accepts "²", which int() refuses


def parse_url(url: str) -> tuple[str, str, dict[str, str]]:
    """'scheme:rest?query' -> (scheme, rest, query). A bare name ('sim') has an empty rest."""
    head, _, query = url.partition("?")
    scheme, _, rest = head.partition(":")
    if not scheme:
        raise BackendError(f"CAN backend {url!r}: expected <interface>:<channel>, replay:<path or CAN log> or sim")
    return scheme, rest, dict(urllib.parse.parse_qsl(query, keep_blank_values=True))


def parse_channels(rest: str) -> dict[int, str]:
    """'can0,can1' -> {0: 'can0', 1: 'can1'}; '0=can0,2=can1' -> {0: 'can0', 2: 'can1'}."""
    out: dict[int, str] = {}
    for i, part in enumerate(p for p in rest.split(",") if p != ""):
        bus_s, eq, channel = part.partition("=")
        if eq:
            if not _is_number(bus_s) or not 0 <= int(bus_s) <= MAX_BUS:
                raise BackendError(f"bus number {bus_s!r} in {rest!r} must be 0..{MAX_BUS}")
            bus = int(bus_s)
        else:
            bus, channel = i, part
        if bus in out:
            raise BackendError(f"bus {bus} given twice in {rest!r}")
        out[bus] = channel
    if not out:
        raise BackendError("no CAN channel given: use <interface>:<channel>, e.g. socketcan:can0")
    return out


class PythonCanBackend(Backend):
    """Any python-can interface; one `can.Bus` per car bus."""

    def __init__(self, interface: str, channels: dict[int, str], kwargs: dict):
        import can  # imported here: the replay backend must work where python-can's adapters are absent
        self._can = can
        self.url = f"{interface}:{','.join(f'{b}={c}' for b, c in channels.items())}"
        self.buses: dict[int, can.BusABC] = {}
        # (bus, address, data) -> when each frame we sent left, while its copy may still come back
        self._own: dict[tuple[int, int, bytes], deque[float]] | None = {} if interface in LOOPS_OWN_FRAMES else None
        try:
            for bus, channel in channels.items():
                self.buses[bus] = can.Bus(interface=interface, channel=channel, **kwargs)
        except (can.CanError, ImportError, OSError, ValueError, TypeError, NotImplementedError) as e:
            self.close()
            raise BackendError(f"cannot open python-can interface {interface!r} channel(s) {channels}: {e}") from e

    def recv(self) -> list[RawFrame]:
        out: list[RawFrame] = []
        for bus, b in self.buses.items():
            for _ in range(MAX_RECV_PER_CALL):
                try:
                    m = b.recv(0)
                except self._can.CanError as e:
                    out.append(RawFrame(-1, b"", bus, is_error=True))  # counted as an error frame
                    cloudlog.warning("CAN receive error", extra={"bus": bus, "error": str(e)[:200]})
                    break
                if m is None:
                    break
                raw = RawFrame(m.arbitration_id, bytes(m.data), bus, m.is_extended_id, m.is_error_frame,
                               m.is_fd, m.is_remote_frame)
                if self._own is None or not self._own_copy(raw):
                    out.append(raw)
        return out

    def _own_copy(self, raw: RawFrame) -> bool:
        """Whether `raw` is the copy of a frame we sent; each sent frame is matched once. A frame another node sent
        with the same bytes in the meantime is indistinguishable from ours, and dropping either one is the same."""
        key = (raw.src, raw.address, raw.dat)
        sent = self._own.get(key)
        if sent is None:
            return False
        now = time.monotonic()
        while sent and now - sent[0] > OWN_COPY_WAIT_S:
            sent.popleft()
        mine = bool(sent)
        if mine:
            sent.popleft()
        if not sent:
            del self._own[key]
        return mine

    def send(self, frame: CanData) -> None:
        b = self.buses.get(frame.src)
        if b is None:
            raise BackendError(f"no channel for bus {frame.src} (channels: {sorted(self.buses)})")
        msg = self._can.Message(arbitration_id=frame.address, data=frame.dat,
                                is_extended_id=frame.address > MAX_STD_ADDRESS, is_fd=len(frame.dat) > 8)
        try:
            b.send(msg, timeout=0.001)
        except self._can.CanError as e:
            raise BackendError(f"send on bus {frame.src} failed: {e}") from e
        if self._own is not None:
            now = time.monotonic()
            self._own.setdefault((frame.src, frame.address, bytes(frame.dat)), deque()).append(now)
            if len(self._own) > OWN_COPY_KEYS:  # copies that never came back: forget the expired ones
                self._own = {k: v for k, v in self._own.items() if now - v[-1] <= OWN_COPY_WAIT_S}

    def close(self) -> None:
        for b in self.buses.values():
            try:
                b.shutdown()
            except Exception as e:  # noqa: BLE001 - a failing adapter must not stop the others from closing
                cloudlog.warning("CAN bus shutdown failed", extra={"error": repr(e)})
        self.buses = {}


# What np.load raises for a file that is not a readable array: besides ValueError, EOFError (an empty file),
# MemoryError (a header claiming a huge shape) and tokenize.TokenError (a damaged header)
NPY_LOAD_ERRORS = (OSError, ValueError, EOFError, MemoryError, tokenize.TokenError)


def _load_npy(path: str, kinds: str) -> np.ndarray:
    """A raw_can column: one value per frame ((n,) or (n, 1)) of a NumPy dtype kind in `kinds`; BackendError."""
    try:
        with open(path, "rb") as f:  # comma2k19 stores .npy files without the extension
            arr = np.load(f, allow_pickle=False)
    except NPY_LOAD_ERRORS as e:
        raise BackendError(f"replay: {path}: not a readable NumPy array ({type(e).__name__}: {str(e)[:200]})") from None
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr.reshape(-1)
    if arr.ndim != 1 or arr.dtype.kind not in kinds:
        raise BackendError(f"replay: {path}: expected one value per frame of dtype kind {'/'.join(kinds)}, "
                           f"got {arr.dtype} of shape {arr.shape}")
    return arr


def _raw_can_dir(path: str) -> str | None:
    for d in (path, os.path.join(path, "processed_log", "CAN", "raw_can")):
        if all(os.path.isfile(os.path.join(d, n)) for n in ("t", "src", "address", "data")):
            return d
    return None


def _dbc_sizes(name: str) -> dict[int, int]:
    from opendbc.can.dbc import DBC
    try:
        return {a: m.size for a, m in DBC(name).addr_to_msg.items()}
    except FileNotFoundError as e:
        raise BackendError(f"dbc {name!r} not found in opendbc") from e


def load_comma2k19(d: str, dbc_by_bus: dict[int, str]) -> list[tuple[float, int, int, bytes]]:
    """(t, bus, address, data) of every frame in a comma2k19 raw_can folder, in time order.

    The `S8` payload array keeps 8 bytes per frame and reading an element drops trailing zero bytes,
    so the true length is lost; where `dbc_by_bus` names a DBC for the bus, a frame of a message that
    DBC knows gets its DBC length back (the bytes past the stored ones were zeros).
    """
    t, src, address, data = (_load_npy(os.path.join(d, n), kinds)
                             for n, kinds in (("t", "fiu"), ("src", "iu"), ("address", "iu"), ("data", "S")))
    if not (len(t) == len(src) == len(address) == len(data)):
        raise BackendError(f"{d}: t/src/address/data have different lengths")
    raw8 = data.astype("S8").view(np.uint8).reshape(-1, 8)
    sizes = {bus: _dbc_sizes(name) for bus, name in dbc_by_bus.items()}
    order = np.argsort(t, kind="stable")
    out = []
    for i in order:
        bus, addr = int(src[i]), int(address[i])
        stored = bytes(data[i])
        size = sizes.get(bus, {}).get(addr)
        dat = bytes(raw8[i, :size]) if size is not None and len(stored) <= size <= 8 else stored
        out.append((float(t[i]), bus, addr, dat))
    return out


def load_roadpilot_log(path: str) -> list[tuple[float, int, int, bytes]]:
    """(t, bus, address, data) of every frame in a roadpilot log/segment/route's `can` messages."""
    from selfdrive.loggerd.logreader import LogError, LogReader  # only this backend reads logs
    try:
        out = []
        for ev in LogReader(path, services=["can"]):
            t = ev.logMonoTime * 1e-9
            out.extend((t, c.src, c.address, bytes(c.dat)) for c in ev.can)
    except (LogError, OSError) as e:
        from hardware.can_logs import FORMATS  # it builds on this module
        hint = f" (CAN logs are known by their file name: {', '.join(FORMATS)})" if os.path.isfile(path) else ""
        raise BackendError(f"cannot replay {path!r}: {e}{hint}") from e
    return out


class ReplayBackend(Backend):
    """Recorded frames at their recorded pace (see the module doc for the options)."""

    def __init__(self, path: str, opts: dict[str, str]):
        self.url = f"replay:{path}"
        known = {"dbc", "bus", "start", "gate", "rate", "offset", "duration", "loop"}
        bad = [k for k in opts if k not in known and not (k.startswith("dbc") and _is_number(k[3:]))]
        if bad:
            raise BackendError(f"replay: unknown option(s) {bad}; known: {sorted(known)} and dbc<bus>")
        try:
            self.rate = float(opts.get("rate", 1.0))
            offset = float(opts.get("offset", 0.0))
            duration = float(opts.get("duration", math.inf))
            start = float(opts["start"]) if "start" in opts else None
        except ValueError as e:
            raise BackendError(f"replay: bad number in options {opts}: {e}") from e
        if not self.rate > 0:
            raise BackendError(f"replay: rate must be > 0, got {self.rate}")
        self.loop = opts.get("loop", "0") not in ("0", "false", "")

        if not os.path.exists(path):
            raise BackendError(f"replay: {path!r} does not exist")
        timed = self._load(path, opts)
        self.skipped_sent = sum(1 for _, f in timed if f.src > MAX_BUS)
        timed = [(t, f) for t, f in timed if f.src <= MAX_BUS]
        if not timed:
            raise BackendError(f"replay: no car frames (bus < 128) in {path!r}")
        t0 = timed[0][0] + offset
        timed = [(t, f) for t, f in timed if t0 <= t < t0 + duration]
        if not timed:
            raise BackendError(f"replay: nothing between offset {offset} s and offset + duration in {path!r}")
        self.times = np.array([t - t0 for t, _ in timed]) / self.rate
        self.frames = [f for _, f in timed]
        self.span = (timed[-1][0] - t0) / self.rate + 0.01
        self.gate = opts.get("gate") or None
        if self.gate is not None and start is not None:
            raise BackendError("replay: give start or gate, not both")
        self.start = time.monotonic() if start is None and self.gate is None else start
        self.pos = 0
        self.finished = False
        cloudlog.info("replay loaded", extra={"path": path, "frames": len(self.frames), "span_s": round(self.span, 3),
                                              "skipped_sent_frames": self.skipped_sent, "start": self.start})

    @staticmethod
    def _load(path: str, opts: dict[str, str]) -> list[tuple[float, RawFrame]]:
        """(recorded time s, frame) in time order from whichever kind of recording `path` is."""
        from hardware.can_logs import FORMATS, is_can_log, parse_bus_map, read_can_log  # it builds on this module
        dbc_opts = {k: v for k, v in opts.items() if k.startswith("dbc")}
        if os.path.isfile(path) and is_can_log(path):
            if dbc_opts:
                raise BackendError("replay: dbc= restores the lengths comma2k19 recordings lost; a CAN log keeps them")
            log = read_can_log(path, parse_bus_map(opts["bus"]) if "bus" in opts else None)
            cloudlog.info("replay: CAN log", extra={"path": path, "format": log.format, "buses": log.buses,
                                                     "skipped_channels": log.skipped})
            if log.warnings:
                cloudlog.warning("replay: python-can skipped parts of the log", extra={
                    "path": path, "warnings": len(log.warnings), "first": log.warnings[:5]})
            return list(zip(log.times.tolist(), log.frames, strict=True))
        if "bus" in opts:
            raise BackendError(f"replay: bus= maps a CAN log's channels, and {path!r} is not a CAN log "
                               f"(those are known by their file name: {', '.join(FORMATS)})")
        raw_dir = _raw_can_dir(path) if os.path.isdir(path) else None
        if raw_dir is None:
            frames = load_roadpilot_log(path)
        else:
            dbc_by_bus = {int(k[3:]): v for k, v in dbc_opts.items() if k[3:]}
            if "dbc" in opts:
                dbc_by_bus = {b: opts["dbc"] for b in range(MAX_BUS + 1)} | dbc_by_bus
            if not dbc_by_bus:
                cloudlog.warning("replay: this recording does not keep frame lengths; pass dbc=<name> to restore them",
                                 extra={"path": path})
            frames = load_comma2k19(raw_dir, dbc_by_bus)
        return [(t, RawFrame(a, d, b, is_extended=a > MAX_STD_ADDRESS)) for t, b, a, d in frames]

    def _open_gate(self) -> bool:
        try:
            with open(self.gate) as f:
                text = f.read().strip()
        except FileNotFoundError:
            return False
        try:
            self.start = float(text)
        except ValueError:
            self.start = time.monotonic()
            cloudlog.warning("replay gate holds no start time: starting now",
                             extra={"gate": self.gate, "text": text[:40]})
        cloudlog.info("replay gate open", extra={"start": self.start})
        return True

    def recv(self) -> list[RawFrame]:
        if self.start is None and not self._open_gate():
            return []
        elapsed = time.monotonic() - self.start
        if elapsed < 0 or self.finished:
            return []
        if self.loop and elapsed >= self.span:
            laps = int(elapsed // self.span)
            self.start += laps * self.span
            elapsed -= laps * self.span
            out = self.frames[self.pos:]
            self.pos = 0
        else:
            out = []
        end = int(np.searchsorted(self.times, elapsed, side="right"))
        out = out + self.frames[self.pos:end]
        self.pos = end
        if self.pos >= len(self.frames) and not self.loop:
            self.finished = True
            cloudlog.info("replay finished", extra={"url": self.url})
        return out

    def send(self, frame: CanData) -> None:
        pass  # no car behind a recording


def open_backend(url: str) -> Backend:
    """The backend named by `url` (see the module doc). Raises BackendError with the reason."""
    scheme, rest, query = parse_url(url)
    if scheme == "sim":
        from hardware.sim_backend import SimBackend  # imported here: sim_backend builds on this module
        return SimBackend(query)
    if scheme == "replay":
        if not rest:
            raise BackendError("replay needs a path: replay:<folder, log or CAN log>")
        return ReplayBackend(rest, query)
    return PythonCanBackend(scheme, parse_channels(rest), {k: _query_value(v) for k, v in query.items()})


def backend_names() -> Sequence[str]:
    """Schemes that open_backend knows (python-can's interfaces, replay, sim) for help texts."""
    try:
        import can
        names = sorted(can.VALID_INTERFACES)
    except (ImportError, AttributeError):
        names = []
    return [*names, "replay", "sim"]
