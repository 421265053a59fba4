"""The stepped clock: process replay's time, and one input at a time (common.clock's third kind).

A daemon under process replay is its own OS process with its own sockets, started with ROADPILOT_CLOCK=stepped and
ROADPILOT_LOCKSTEP=<control file>; its code is the same as on a car. The driver (tools/replay/lockstep_driver.py:
process replay, `roadpilot replay --lockstep`'s rerun, the benchmark) feeds it recorded messages. This module is the
daemon's side, and the messaging layer and common.clock call it when the clock is stepped:

  * Time is the recording's. common.clock reads the control file's CLOCK word, which the driver sets, so every
    timestamp and every timeout is in recorded time. A sleep and a wait for input with a timeout end when the
    driver's clock passes the deadline, never because the machine was slow.
  * One step at a time. The driver sends one input only when the daemon is *idle*: blocked in a wait with nothing to
    read on the sockets it waits on. After the send it waits until the daemon is idle again, which means it has
    handled the input and published everything that input caused (the driver then has received exactly as many
    messages per output as the daemon published). An input on a socket the daemon is not waiting on (controlsd waits
    on carState, not on the plan) is queued without a wait, as in real life, and read when the daemon next wakes.
  * Nothing is in flight. A read that finds a socket empty first waits until every message the driver sent to that
    socket has arrived, so what a daemon sees never depends on ZMQ's delivery timing.
  * Timeouts happen where they would have. Before sending an input stamped t, the driver moves the clock to each
    earlier deadline the idle daemon is waiting for and lets it time out (card's "no CAN for 15 ms" cycle, a
    planner's stale-model step), in order.
  * No message is lost to slow joiners. The driver publishes through XPUB sockets and holds an input until each of
    the daemon's subscriptions to it has arrived; the daemon's publishers are XPUBs that hold their first message
    until the driver has subscribed. An input for a service the daemon has no socket for yet is dropped (counted),
    as it would be live.

Only the main thread is stepped; other threads see the recorded time but wait in real time. Conflated SUB sockets
are not tracked (no daemon uses them).
"""

import os
import threading

import numpy as np
import zmq

from cereal.services import SERVICES
from common.clock import STEPPED_ENV as ENV
from common.mapped_words import map_words

SERVICE_INDEX = {s: i for i, s in enumerate(SERVICES)}
NSERV = 64
# control block: int64 words (CLOCK first: common.clock reads the time there, as it reads the driven clock's file)
CLOCK, IDLE_SEQ, IDLE_DEADLINE, IDLE_MASK, STATE, BINDS = 0, 1, 2, 3, 4, 5
SENT, PUBLISHED, SUBSCRIBED, BOUND = 16, 16 + NSERV, 16 + 2 * NSERV, 16 + 3 * NSERV
WORDS = 16 + 4 * NSERV
BUSY, IDLE = 0, 1
FOREVER = 2**62
REAL_WAIT_MS = 5000  # a message the driver sent must arrive within this, or lockstep is broken: say so
FIRST_READER_S = 10.0  # a publisher's first message waits this long for the driver's subscription


class LockstepError(RuntimeError):
    """The lockstep protocol broke: a daemon died, a message never arrived, a subscriber never came."""


def control_block(path: str, create: bool = False) -> np.ndarray:
    """The shared page as int64 words (a plain ndarray over the mapping: np.memmap's indexing is 10x slower);
    `create` zeroes it (an earlier replay's on this prefix)."""
    cb = np.frombuffer(map_words(path, WORDS, create=create), dtype=np.int64)
    if create:
        cb[:] = 0
    return cb


def channel(path: str, kind: str) -> str:
    return f"ipc://{path}-{kind}"


def control_path() -> str:
    """The control file this process is stepped by (its CLOCK word is common.clock's time)."""
    path = os.environ.get(ENV)
    if not path:
        raise ValueError(f"the stepped clock needs {ENV}=<control file> (process replay's driver sets it)")
    return path


def _real_poll(socks: list, timeout_ms: int, flags: int = zmq.POLLIN) -> list:
    return [(s, e) for s, e in zmq.zmq_poll([(s, flags) for s in socks], timeout_ms) if e]


class _Stepper:
    """This process's end of the control block, its wake-up and idle channels, and what its SUB sockets have read."""

    def __init__(self, path: str):
        self.cb = control_block(path)
        ctx = zmq.Context.instance()
        self.wake = ctx.socket(zmq.PULL)
        self.wake.connect(channel(path, "wake"))
        self.idle = ctx.socket(zmq.PUSH)
        self.idle.connect(channel(path, "idle"))
        self.subs: dict[zmq.Socket, list[int]] = {}  # SUB socket -> [service index, sent before it joined, read]

    def now(self) -> int:
        return int(self.cb[CLOCK])

    def in_flight(self, sock: zmq.Socket) -> bool:
        st = self.subs.get(sock)
        return st is not None and self.cb[SENT + st[0]] - st[1] > st[2]

    def wait(self, socks: list[zmq.Socket], timeout_ms: float | None) -> bool:
        """Until one of `socks` has something to read (True) or the clock passed the deadline (False): the driver is
        told we are idle once per wait (a wake-up that changes nothing is not a new step)."""
        deadline = FOREVER if timeout_ms is None or timeout_ms < 0 else self.now() + int(timeout_ms * 1e6)
        notified = False
        while True:
            ready = bool(socks) and bool(_real_poll(socks, 0))
            if ready or self.now() >= deadline:
                self.cb[STATE] = BUSY
                return ready
            if any(self.in_flight(s) for s in socks):
                if not _real_poll(socks, REAL_WAIT_MS):
                    raise LockstepError("a message the driver sent did not arrive")
                continue
            if not notified:
                mask = 0
                for s in socks:
                    if s in self.subs:
                        mask |= 1 << self.subs[s][0]
                self.cb[IDLE_DEADLINE], self.cb[IDLE_MASK] = deadline, mask
                self.cb[IDLE_SEQ] += 1
                self.cb[STATE] = IDLE
                self.idle.send(b"")  # blocks only until the driver's end is connected (at start)
                notified = True
            _real_poll([*socks, self.wake], -1)
            while True:  # every wake-up is one clock move; drain them all
                try:
                    self.wake.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break

    def recv(self, sock: zmq.Socket) -> bytes | None:
        """The next message on `sock` without waiting for a new one (None: none), but for one the driver already sent
        and ZMQ has not handed over yet."""
        while True:
            try:
                dat = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                if not self.in_flight(sock):
                    return None
                if not _real_poll([sock], REAL_WAIT_MS):
                    raise LockstepError("a message the driver sent did not arrive") from None
                continue
            if sock in self.subs:
                self.subs[sock][2] += 1
            return dat

    def subscribed(self, sock: zmq.Socket, service: str) -> None:
        i = SERVICE_INDEX[service]
        self.subs[sock] = [i, int(self.cb[SENT + i]), 0]
        self.cb[SUBSCRIBED + i] += 1

    def bound(self, service: str) -> None:
        self.cb[BOUND + SERVICE_INDEX[service]] = 1
        self.cb[BINDS] += 1

    def published(self, service: str) -> None:
        self.cb[PUBLISHED + SERVICE_INDEX[service]] += 1


_steppers: dict[str, _Stepper] = {}


def stepper(any_thread: bool = False) -> _Stepper | None:
    """This process's stepper when its clock is stepped and the caller is the main thread (the one stepped, or any
    with `any_thread`: sockets are counted whoever made them); None otherwise (a car's clock, or another thread:
    real waits)."""
    from common import clock
    if not clock.stepped() or not (any_thread or threading.current_thread() is threading.main_thread()):
        return None
    path = control_path()
    if path not in _steppers:
        _steppers[path] = _Stepper(path)
    return _steppers[path]
