"""VisionIPC: camera frames in shared memory, a tiny notification per frame over ZMQ.

A server (camerad) owns one POSIX shared-memory segment per stream, `/dev/shm/rp-<prefix>-vipc-<stream>`,
holding `num_buffers` NV12 frames and a header with their geometry. `send()` copies a frame into the
next buffer (C, under a per-buffer seqlock) and publishes a 52-byte notification (stream, buffer
index, frame id, timestamps, valid, sequence number, server generation) on `ipc://<run_dir>/visionipc_<stream>`.
A producer that can write its frame in place uses `acquire()` + `publish()` instead and skips the copy.
Clients map the segment once and hand out read-only NumPy views of the pixels: no copy.

Reading safely: the buffer a client holds is rewritten `num_buffers` frames later. `recv()` only
returns a frame whose buffer still holds it, and `frame.valid_after_read()` (or `with frame:`) says
whether the pixels were untouched while they were used. Frames the client never saw (it was slow,
or their buffer was already rewritten) are counted in `frame.dropped_before` and `client.dropped_frames`.

Lifetime: the server unlinks its segment on `close()`, at interpreter exit and on SIGTERM (when the
process has no SIGTERM handler of its own, one that exits cleanly is installed). Clients never own
a segment, so a client crash leaves nothing behind. A SIGKILLed server cannot clean up: its segment
stays in /dev/shm until the next server of that stream and prefix starts, which replaces it. A
restarted server has a new generation; clients see it in the notifications and remap by themselves.
"""

import mmap
import os
import signal
import struct
import threading
import time
import weakref
from enum import IntEnum

import numpy as np
import psutil
import zmq

from cereal.messaging.endpoints import ipc_endpoint
from common.paths import prefix
from common.swaglog import cloudlog, log_due

try:
    from cereal.visionipc._visionipc import ffi, lib
except ImportError as e:  # pragma: no cover - only without a build
    raise ImportError("cereal.visionipc's C part is not built: run `scons` in the repository root") from e

__all__ = ["VisionStreamType", "VisionIpcServer", "VisionIpcClient", "VisionBuf", "WritableBuf", "FrameOverwritten",
           "shm_name", "notify_endpoint", "nv12_size"]

PAGE = 4096
NOTIFY_MAGIC = b"VIPN"
NOTIFY_VERSION = 1
# magic, version, stream, flags (bit 0: valid), buffer index, generation, seq, frame id, SOF ns, EOF ns
NOTIFY = struct.Struct("<4sHBBIQQQQQ")
FLAG_VALID = 1


class VisionStreamType(IntEnum):
    ROAD = 0
    WIDE_ROAD = 1
    DRIVER = 2


class FrameOverwritten(RuntimeError):
    """The server rewrote a frame's buffer while it was being used: the pixels read may be torn."""


def shm_name(stream: VisionStreamType) -> str:
    return f"/rp-{prefix()}-vipc-{VisionStreamType(stream).name.lower()}"


def notify_endpoint(stream: VisionStreamType, create: bool = False) -> str:
    return ipc_endpoint(f"visionipc_{VisionStreamType(stream).name.lower()}", create=create)


def nv12_size(width: int, height: int) -> int:
    return width * height * 3 // 2


def _layout(num_buffers: int, width: int, height: int, stride: int):
    info = ffi.new("vipc_info *")
    if lib.vipc_layout(num_buffers, width, height, stride, info) != 0:
        raise ValueError(f"bad VisionIPC geometry {width}x{height} stride {stride} x{num_buffers} buffers: NV12 "
                         f"needs even width/height in 2..{lib.VIPC_MAX_DIM}, stride >= width, "
                         f"1..{lib.VIPC_MAX_BUFFERS} buffers")
    return info


def _views(mm: mmap.mmap, info) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Per buffer: the NV12 frame (height*3/2, width), Y (height, width) and UV (height/2, width/2, 2) views."""
    w, h, s = info.width, info.height, info.stride
    arr = np.frombuffer(mm, dtype=np.uint8)  # read-only when the mapping is
    nv12, y, uv = [], [], []
    for i in range(info.num_buffers):
        start = info.data_offset + i * info.buf_stride
        plane = arr[start:start + s * h * 3 // 2].reshape(h * 3 // 2, s)[:, :w]
        nv12.append(plane)
        y.append(plane[:h])
        uv.append(plane[h:].reshape(h // 2, w // 2, 2))
    return nv12, y, uv


class _Mapping:
    """One mapped segment and the NumPy views of its buffers (alive while any frame from it is)."""

    def __init__(self, mm: mmap.mmap, ptr, info):
        self.ptr, self.info, self.generation = ptr, info, info.generation
        self.nv12, self.y, self.uv = _views(mm, info)


def _open_segment(name: str) -> _Mapping | None:
    """Maps a server's segment read-only; None while it does not exist or is not set up yet."""
    fd = lib.vipc_shm_open_ro(name.encode())
    if fd < 0:
        return None
    try:
        size = os.fstat(fd).st_size
        if size < PAGE:
            return None  # the server is between creating and sizing it
        mm = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    ptr = ffi.from_buffer(mm)
    info = ffi.new("vipc_info *")
    rc = lib.vipc_read_info(ptr, size, info)
    if rc == lib.VIPC_E_NOTREADY:
        return None
    if rc != 0:
        cloudlog.warning("visionipc: unusable shared memory segment", extra={"segment": name, "code": rc})
        return None
    return _Mapping(mm, ptr, info)


def _pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _cleanup(name: str, ptr, sock: zmq.Socket, owner_pid: int) -> None:
    # Runs on close(), garbage collection or interpreter exit; a forked child must not unlink its parent's segment.
    if os.getpid() != owner_pid:
        return
    lib.vipc_server_close(ptr)
    lib.vipc_shm_unlink(name.encode())
    sock.close(0)


def _exit_on_sigterm(signum, _frame) -> None:
    raise SystemExit(128 + signum)  # unwinds normally, so atexit and finalizers unlink the segment


class VisionIpcServer:
    """Owns one stream's frame buffers. `send()` is called by one thread (the camera loop)."""

    def __init__(self, stream: VisionStreamType, width: int, height: int, num_buffers: int = 4,
                 stride: int | None = None):
        self.stream = VisionStreamType(stream)
        info = _layout(num_buffers, width, height, width if stride is None else stride)
        self.width, self.height, self.stride, self.num_buffers = width, height, info.stride, num_buffers
        self.frame_size = int(info.frame_size)
        self.name = shm_name(self.stream)
        self._refuse_if_served()

        fd = lib.vipc_shm_create(self.name.encode(), info.total_size)
        if fd < 0:
            raise OSError(-fd, f"cannot create shared memory {self.name}: {os.strerror(-fd)}")
        try:
            self._mm = mmap.mmap(fd, info.total_size, flags=mmap.MAP_SHARED)
        finally:
            os.close(fd)
        self._ptr = ffi.from_buffer(self._mm, require_writable=True)
        info.stream = int(self.stream)
        info.generation = self.generation = int.from_bytes(os.urandom(8), "little") | 1
        info.server_pid = os.getpid()
        if lib.vipc_server_init(self._ptr, info.total_size, info) != 0:
            lib.vipc_shm_unlink(self.name.encode())
            raise RuntimeError(f"VisionIPC: could not set up {self.name}")

        self._sock = zmq.Context.instance().socket(zmq.PUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._finalizer = weakref.finalize(self, _cleanup, self.name, self._ptr, self._sock, os.getpid())
        self._sock.bind(notify_endpoint(self.stream, create=True))
        self._next_buf = 0
        self._seq = ffi.new("uint64_t *")
        self._nv12, self._y, self._uv = _views(self._mm, info)
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
        cloudlog.info("visionipc: serving", extra={"segment": self.name, "width": width, "height": height,
                                                    "stride": self.stride, "buffers": num_buffers})

    def _refuse_if_served(self) -> None:
        old = _open_segment(self.name)
        if old is None:
            return
        pid = old.info.server_pid
        if _pid_alive(pid):
            raise RuntimeError(f"VisionIPC stream {self.stream.name} of prefix {prefix()} is served by pid {pid}")
        cloudlog.warning("visionipc: replacing a segment left by a dead server",
                         extra={"segment": self.name, "pid": pid})

    def send(self, frame, frame_id: int, timestamp_sof: int = 0, timestamp_eof: int = 0, valid: bool = True) -> int:
        """Copies one NV12 frame (Y rows then interleaved UV rows, `width` bytes each, contiguous) into the
        next buffer and notifies clients. Accepts bytes, bytearray, memoryview or a uint8 ndarray.
        Returns the buffer index used."""
        if not self._finalizer.alive:
            raise RuntimeError("VisionIpcServer is closed")
        if isinstance(frame, np.ndarray):
            if frame.dtype != np.uint8:
                raise ValueError(f"frame must be uint8, got {frame.dtype}")
            frame = np.ascontiguousarray(frame)
        try:
            buf = ffi.from_buffer("uint8_t[]", frame)
        except TypeError as e:
            raise ValueError(f"frame must be a contiguous bytes-like object: {e}") from None
        if len(buf) != self.frame_size:
            raise ValueError(f"frame is {len(buf)} bytes; a {self.width}x{self.height} NV12 frame is {self.frame_size} "
                             f"bytes (Y {self.width * self.height} + UV {self.width * self.height // 2})")
        idx = self._next_buf
        self._next_buf = (idx + 1) % self.num_buffers
        # Notifying before the copy (so the copy overlaps the client's wake-up) measured no faster on 2 CPUs: the
        # copy and ZMQ's I/O threads then compete for them. So: copy, commit, notify.
        lib.vipc_write_begin(self._ptr, idx, self._seq)
        lib.vipc_write_copy(self._ptr, idx, buf, len(buf))
        lib.vipc_write_commit(self._ptr, idx, frame_id, timestamp_sof, timestamp_eof, valid, self._seq)
        self._notify(idx, self._seq[0], frame_id, timestamp_sof, timestamp_eof, valid)
        return idx

    def acquire(self) -> "WritableBuf":
        """The next buffer, to be filled in place (no copy) and then given to publish(). Until publish() it is
        marked as being written, so no client uses it."""
        if not self._finalizer.alive:
            raise RuntimeError("VisionIpcServer is closed")
        idx = self._next_buf
        lib.vipc_write_begin(self._ptr, idx, self._seq)
        self._next_buf = (idx + 1) % self.num_buffers
        return WritableBuf(idx, self._nv12[idx], self._y[idx], self._uv[idx])

    def publish(self, buf: "WritableBuf", frame_id: int, timestamp_sof: int = 0, timestamp_eof: int = 0,
                valid: bool = True) -> None:
        """Publishes a buffer from acquire() once its pixels are written."""
        if not self._finalizer.alive:
            raise RuntimeError("VisionIpcServer is closed")
        if lib.vipc_write_commit(self._ptr, buf.buf_idx, frame_id, timestamp_sof, timestamp_eof, valid, self._seq):
            raise ValueError(f"buffer {buf.buf_idx} was not acquired (or was published already)")
        self._notify(buf.buf_idx, self._seq[0], frame_id, timestamp_sof, timestamp_eof, valid)

    def _notify(self, idx: int, seq: int, frame_id: int, timestamp_sof: int, timestamp_eof: int, valid: bool) -> None:
        self._sock.send(NOTIFY.pack(NOTIFY_MAGIC, NOTIFY_VERSION, self.stream, FLAG_VALID if valid else 0, idx,
                                    self.generation, seq, frame_id, timestamp_sof, timestamp_eof), zmq.NOBLOCK)

    def close(self) -> None:
        """Unlinks the segment; clients keep their mapping until they drop it. Safe to call twice."""
        self._finalizer()

    def __enter__(self) -> "VisionIpcServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class WritableBuf:
    """A server buffer being filled in place: y, uv and nv12 are writable views (same shapes as VisionBuf's)."""

    __slots__ = ("buf_idx", "nv12", "y", "uv")

    def __init__(self, idx: int, nv12: np.ndarray, y: np.ndarray, uv: np.ndarray):
        self.buf_idx, self.nv12, self.y, self.uv = idx, nv12, y, uv


class VisionBuf:
    """One received frame: read-only views into shared memory, valid until the server reuses the buffer.

    y: (height, width) uint8; uv: (height/2, width/2, 2) uint8 (U, V); nv12: (height*3/2, width), Y rows then UV rows.
    """

    __slots__ = ("y", "uv", "nv12", "buf_idx", "frame_id", "timestamp_sof", "timestamp_eof", "valid", "dropped_before",
                 "generation", "_mapping", "_seq")

    def __init__(self, m: _Mapping, idx: int, seq: int, frame_id: int, sof: int, eof: int, valid: bool, dropped: int):
        self.y, self.uv, self.nv12 = m.y[idx], m.uv[idx], m.nv12[idx]
        self.buf_idx, self.frame_id, self.timestamp_sof, self.timestamp_eof = idx, frame_id, sof, eof
        self.valid, self.dropped_before, self.generation = valid, dropped, m.generation
        self._mapping, self._seq = m, seq

    @property
    def width(self) -> int:
        return self.y.shape[1]

    @property
    def height(self) -> int:
        return self.y.shape[0]

    def valid_after_read(self) -> bool:
        """True if the buffer still holds this frame, so what was read from the views is this frame, intact."""
        return bool(lib.vipc_read_check(self._mapping.ptr, self.buf_idx, self._seq))

    def __enter__(self) -> "VisionBuf":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and not self.valid_after_read():
            raise FrameOverwritten(f"frame {self.frame_id} was overwritten while in use (buffer {self.buf_idx})")


class VisionIpcClient:
    """Reads one stream. Start it before or after the server; it follows server restarts by itself."""

    def __init__(self, stream: VisionStreamType, conflate: bool = False):
        self.stream = VisionStreamType(stream)
        self.name = shm_name(self.stream)
        self._sock = zmq.Context.instance().socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.RECONNECT_IVL, 20)  # a (re)starting server is found within ~20 ms
        if conflate:
            self._sock.setsockopt(zmq.CONFLATE, 1)
        self._sock.setsockopt(zmq.SUBSCRIBE, b"")
        self._sock.connect(notify_endpoint(self.stream))
        self._map: _Mapping | None = None
        self._meta = ffi.new("vipc_frame_meta *")
        self._last: tuple[int, int] | None = None  # (generation, frame id) of the last notification
        self._pending_drops = 0
        self.dropped_frames = 0   # frames never handed out: frame-id gaps and buffers rewritten before we got there
        self.malformed = 0        # notifications that were not ours or made no sense

    @property
    def connected(self) -> bool:
        return self._map is not None

    @property
    def generation(self) -> int | None:
        return None if self._map is None else self._map.generation

    @property
    def width(self) -> int | None:
        return None if self._map is None else self._map.info.width

    @property
    def height(self) -> int | None:
        return None if self._map is None else self._map.info.height

    @property
    def num_buffers(self) -> int | None:
        return None if self._map is None else self._map.info.num_buffers

    def connect(self, timeout_s: float = 5.0) -> bool:
        """Waits up to `timeout_s` for the server's segment; True once mapped."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._map = _open_segment(self.name) or self._map
            if self._map is not None or time.monotonic() >= deadline:
                return self._map is not None
            time.sleep(0.02)

    def recv(self, timeout_ms: int = 100) -> VisionBuf | None:
        """The next intact frame, or None after `timeout_ms` (0: only what is already queued)."""
        deadline = time.monotonic() + timeout_ms / 1000
        while self._sock.poll(max(0, int((deadline - time.monotonic()) * 1000))):
            try:
                frame = self._handle(self._sock.recv(zmq.NOBLOCK))
            except zmq.Again:
                continue
            if frame is not None:
                return frame
        return None

    def _bad(self, why: str) -> None:
        self.malformed += 1
        if log_due(self.malformed):
            cloudlog.warning("visionipc: bad notification dropped", extra={"why": why, "count": self.malformed})

    def _handle(self, msg: bytes) -> VisionBuf | None:
        if len(msg) != NOTIFY.size:
            return self._bad(f"{len(msg)} bytes")
        magic, version, stream, flags, idx, gen, seq, fid, sof, eof = NOTIFY.unpack(msg)
        if magic != NOTIFY_MAGIC or version != NOTIFY_VERSION or stream != self.stream:
            return self._bad(f"magic {magic!r} version {version} stream {stream}")
        m = self._map
        if m is None or m.generation != gen:
            m = _open_segment(self.name)
            if m is None or m.generation != gen:
                return None  # from a server that is gone (or not there yet): nothing to read
            if self._map is not None:
                cloudlog.info("visionipc: server restarted, remapped", extra={"segment": self.name})
            self._map = m
        if idx >= m.info.num_buffers:
            return self._bad(f"buffer index {idx}")

        gap = fid - self._last[1] - 1 if self._last is not None and self._last[0] == gen and fid > self._last[1] else 0
        self._last = (gen, fid)  # a new generation or frame ids starting over: no gap to count
        intact = lib.vipc_read_begin(m.ptr, idx, seq, self._meta) and self._meta.frame_id == fid
        lost = gap + (0 if intact else 1)  # not intact: rewritten already, a newer notification is queued
        self._pending_drops += lost
        self.dropped_frames += lost
        if not intact:
            return None
        frame = VisionBuf(m, idx, seq, fid, sof, eof, bool(flags & FLAG_VALID), self._pending_drops)
        self._pending_drops = 0
        return frame

    def close(self) -> None:
        self._sock.close(0)
        self._map = None
