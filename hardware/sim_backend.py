"""The `sim` CAN backend: the simulator's car (tools/sim/bridge.py) as canbridged's CAN adapter.

Wire: two ZMQ PUSH -> PULL pairs in the run directory; canbridged (the adapter) binds both, the bridge
(the car) connects, so either may start first:
    sim_can_car  bridge -> canbridged  the car's frames of one 10 ms step, one message per step
    sim_can_cmd  canbridged -> bridge  frames the adapter puts on the bus (after the safety layer)
A car message is a sequence of frames, each `<IBB` (address, bus, length) followed by `length` bytes. A
command message starts with a `<q` tag: 0 and one frame as the adapter sends it, or a `sendcan`'s logMonoTime and
no frames once everything of that `sendcan` the safety layer let through was sent (its end: the lockstep bridge
takes it as the stack's answer to a step, also when the safety layer refused every frame of it). A malformed car
message is handed to canbridged as one error frame, so it is counted like bus garbage.

Pace: on a wall clock canbridged publishes `can` on its own 10 ms tick, whatever the car sent meanwhile. On the
driven clock (common.clock: the lockstep simulator, which moves the clock to a step's time before it sends that
step) the car's steps are the bus's time: canbridged publishes one `can` per car message (`step_socket`).
Like a real bus, frames sent while nobody listens are lost: a send with no car connected fails
(BackendError, the car "does not acknowledge"), and the car's frames are dropped while canbridged is away.
"""

import struct
from collections.abc import Iterable

import zmq
from opendbc.car.can_definitions import CanData

from cereal.messaging.endpoints import ipc_endpoint
from common import clock
from hardware.can_backends import Backend, BackendError, RawFrame

CAR_ENDPOINT = "sim_can_car"
CMD_ENDPOINT = "sim_can_cmd"
FRAME_HEADER = struct.Struct("<IBB")
TAG = struct.Struct("<q")  # command messages: 0 (a frame sent) or the logMonoTime of the sendcan that ended
QUEUE = 100        # messages (1 s of steps) a slow reader may fall behind before the sender drops
MAX_PER_RECV = 1000


def pack_frames(frames: Iterable[CanData]) -> bytes:
    """Frames -> one wire message."""
    return b"".join(FRAME_HEADER.pack(a, b, len(d)) + bytes(d) for a, d, b in frames)


def unpack_frames(msg: bytes) -> list[CanData]:
    """One wire message -> frames; ValueError when it is not a whole number of frames. They are what the wire
    carried, unchecked: the adapter's end (SimBackend.recv) hands them to canbridged as RawFrames."""
    out, pos, n = [], 0, len(msg)
    while pos < n:
        if pos + FRAME_HEADER.size > n:
            raise ValueError(f"truncated frame header at byte {pos} of {n}")
        address, bus, length = FRAME_HEADER.unpack_from(msg, pos)
        pos += FRAME_HEADER.size
        if pos + length > n:
            raise ValueError(f"frame at byte {pos} says {length} bytes, {n - pos} left")
        out.append(CanData(address, msg[pos:pos + length], bus))
        pos += length
    return out


def _socket(kind: int) -> zmq.Socket:
    s = zmq.Context.instance().socket(kind)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.SNDHWM if kind == zmq.PUSH else zmq.RCVHWM, QUEUE)
    if kind == zmq.PUSH:
        s.setsockopt(zmq.IMMEDIATE, 1)  # queue nothing for a peer that is not there
    return s


class SimBackend(Backend):
    """canbridged's end: the adapter."""

    url = "sim"

    def __init__(self, opts: dict[str, str] | None = None):
        if opts:
            raise BackendError(f"sim: takes no options, got {sorted(opts)}")
        self.rx = _socket(zmq.PULL)
        self.tx = _socket(zmq.PUSH)
        try:
            self.rx.bind(ipc_endpoint(CAR_ENDPOINT, create=True))
            self.tx.bind(ipc_endpoint(CMD_ENDPOINT, create=True))
        except zmq.ZMQError as e:
            self.close()
            raise BackendError(f"sim: cannot listen in {ipc_endpoint(CAR_ENDPOINT)} (another canbridged?): {e}") \
                from None
        self.malformed = 0
        self.step_socket = self.rx if clock.driven() else None

    def recv(self) -> list[RawFrame]:
        out: list[RawFrame] = []
        for _ in range(1 if self.step_socket is not None else MAX_PER_RECV):  # paced: one step per `can`
            try:
                msg = self.rx.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                frames = unpack_frames(msg)
            except ValueError:
                self.malformed += 1
                out.append(RawFrame(-1, b"", 0, is_error=True))
                continue
            out.extend(RawFrame(a, d, b, is_extended=a > 0x7FF) for a, d, b in frames)
        return out

    def send(self, frame: CanData) -> None:
        try:
            self.tx.send(TAG.pack(0) + pack_frames([frame]), zmq.NOBLOCK)
        except zmq.Again:
            raise BackendError("sim: no simulated car on the bus (is the bridge running?)") from None

    def end_sendcan(self, stamp_ns: int) -> None:
        try:
            self.tx.send(TAG.pack(stamp_ns), zmq.NOBLOCK)
        except zmq.Again:
            pass  # no car on the bus: nobody to tell

    def close(self) -> None:
        for s in (self.rx, self.tx):
            s.close(0)


class SimCarLink:
    """The bridge's end: the car puts its frames on the bus and takes the adapter's."""

    def __init__(self):
        self.tx = _socket(zmq.PUSH)
        self.rx = _socket(zmq.PULL)
        self.tx.connect(ipc_endpoint(CAR_ENDPOINT))
        self.rx.connect(ipc_endpoint(CMD_ENDPOINT))
        self.dropped_steps = 0
        self.malformed = 0

    def send(self, frames: list[CanData]) -> bool:
        """One step's frames; False (and counted) when no adapter took them."""
        try:
            self.tx.send(pack_frames(frames), zmq.NOBLOCK)
            return True
        except zmq.Again:
            self.dropped_steps += 1
            return False

    def take(self, timeout_ms: int = 0) -> tuple[int, list[CanData]] | None:
        """The adapter's next command message as (tag, frames) (see the module doc), waiting up to `timeout_ms`;
        None when none came. A malformed one is counted and skipped."""
        if timeout_ms > 0 and not self.rx.poll(timeout_ms):
            return None
        while True:
            try:
                msg = self.rx.recv(zmq.NOBLOCK)
            except zmq.Again:
                return None
            try:
                if len(msg) < TAG.size:
                    raise ValueError(f"{len(msg)} bytes: no tag")
                return TAG.unpack_from(msg)[0], unpack_frames(msg[TAG.size:])
            except ValueError:
                self.malformed += 1

    def recv(self, timeout_ms: int = 0) -> list[CanData]:
        """Every frame the adapter sent so far (waits up to `timeout_ms` for the first message)."""
        out: list[CanData] = []
        got = self.take(timeout_ms)
        while got is not None:
            out.extend(got[1])
            got = self.take(0)
        return out

    def close(self) -> None:
        for s in (self.rx, self.tx):
            s.close(0)
