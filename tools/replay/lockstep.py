"""Deterministic lockstep for a real daemon process: virtual time, and one input at a time.

A daemon under lockstep is its own OS process with its own sockets, started as

    python -m tools.replay.lockstep <daemon module> [args...]     (with ROADPILOT_LOCKSTEP=<control file>)

which installs the hooks below and then runs the module as `__main__`. The driver (`LockstepDaemon`,
used by process replay, the benchmark and `replay --lockstep`) feeds it recorded messages.

The contract, in the daemon's own terms:
  * Time is the recording's. `time.monotonic[_ns]` read a clock the driver sets (a shared-memory page),
    so every timestamp and every timeout is in recorded time. `time.sleep` and every socket wait with
    a timeout end when the driver's clock passes the deadline, never because the machine was slow.
  * One step at a time. The driver sends one input only when the daemon is *idle*: blocked in a wait
    with nothing to read on the sockets it waits on. After the send it waits until the daemon is idle
    again, which means it has handled the input and published everything that input caused (the
    driver then has received exactly as many messages per output as the daemon published). An input
    on a socket the daemon is not waiting on (controlsd waits on carState, not on the plan) is queued
    without a wait, as in real life, and read when the daemon next wakes.
  * Nothing is in flight. A read that finds a socket empty (`recv(NOBLOCK)`, a 0 ms poll) first waits
    until every message the driver sent to that socket has arrived, so what a daemon sees never
    depends on ZMQ's delivery timing.
  * Timeouts happen where they would have. Before sending an input stamped t, the driver moves the
    clock to each earlier deadline the idle daemon is waiting for and lets it time out (card's "no CAN
    for 20 ms" step, a planner's stale-model step), in order.
  * No message is lost to slow joiners. The driver publishes through XPUB sockets and holds an input
    until each of the daemon's subscriptions to it has arrived; the daemon's publishers are XPUBs that
    hold their first message until the driver has subscribed. An input for a service the daemon has no
    socket for yet is dropped (counted), as it would be live.

Only the main thread is stepped; other threads see virtual time but wait in real time. Conflated SUB
sockets are not tracked (no daemon uses them). The hooks patch cereal.messaging's socket classes and
pyzmq's recv/poll in the child only; see the report proposing to move this into cereal.messaging.
"""

import importlib
import json
import os
import runpy
import sys
import threading
import time

import numpy as np
import zmq

from cereal.services import SERVICES
from common.mapped_words import map_words

ENV = "ROADPILOT_LOCKSTEP"
SET_ENV = "ROADPILOT_LOCKSTEP_SET"  # "pkg.module:NAME=<json>;..." set before the daemon runs (tests change behaviour)
SERVICE_INDEX = {s: i for i, s in enumerate(SERVICES)}
NSERV = 64
# control block: int64 words
CLOCK, IDLE_SEQ, IDLE_DEADLINE, IDLE_MASK, STATE, BINDS = 0, 1, 2, 3, 4, 5
SENT, PUBLISHED, SUBSCRIBED, BOUND = 16, 16 + NSERV, 16 + 2 * NSERV, 16 + 3 * NSERV
WORDS = 16 + 4 * NSERV
BUSY, IDLE = 0, 1
FOREVER = 2**62
REAL_WAIT_MS = 5000  # a message the driver sent must arrive within this, or lockstep is broken: say so


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


# ---------------------------------------------------------------------------------------------------
# the daemon's side

class _Child:
    def __init__(self, path: str):
        self.cb = control_block(path)
        ctx = zmq.Context.instance()
        self.wake = ctx.socket(zmq.PULL)
        self.wake.connect(channel(path, "wake"))
        self.idle = ctx.socket(zmq.PUSH)
        self.idle.connect(channel(path, "idle"))
        self.subs: dict = {}     # zmq SUB socket -> [service index, base sent count, received]
        self.main = threading.main_thread()

    def now(self) -> int:
        return int(self.cb[CLOCK])

    def in_flight(self, sock) -> bool:
        st = self.subs.get(sock)
        return st is not None and self.cb[SENT + st[0]] - st[1] > st[2]

    def wait(self, socks: list, timeout_ms, real_poll):
        """Lockstep wait on `socks`: ready events, or [] when virtual time passed the deadline."""
        deadline = FOREVER if timeout_ms is None or timeout_ms < 0 else self.now() + int(timeout_ms * 1e6)
        notified = False
        while True:
            ev = real_poll(0)
            if ev or self.now() >= deadline:
                self.cb[STATE] = BUSY
                return ev
            if any(self.in_flight(s) for s in socks):
                if not real_poll(REAL_WAIT_MS):
                    raise LockstepError("a message the driver sent did not arrive")
                continue
            if not notified:  # one notice per wait: a wake-up that changes nothing is not a new step
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
                    _orig["recv"](self.wake, zmq.NOBLOCK)
                except zmq.Again:
                    break


_child: _Child | None = None
_orig: dict = {}


def _real_poll(socks: list, timeout_ms: int, flags: int = zmq.POLLIN) -> list:
    """A real-time poll that bypasses the hooks (pyzmq's Socket.poll goes through Poller.poll)."""
    return [(s, e) for s, e in zmq.zmq_poll([(s, flags) for s in socks], timeout_ms) if e]


def _stepped() -> bool:
    return _child is not None and threading.current_thread() is _child.main


def _recv(self, flags=0, copy=True, track=False):
    if not _stepped() or self not in _child.subs:
        return _orig["recv"](self, flags, copy, track)
    if not flags & zmq.NOBLOCK:
        _child.wait([self], None, lambda ms: _real_poll([self], ms))
    while True:
        try:
            dat = _orig["recv"](self, flags | zmq.NOBLOCK, copy, track)
        except zmq.Again:
            if not _child.in_flight(self):
                raise
            if not _real_poll([self], REAL_WAIT_MS):
                raise LockstepError("a message the driver sent did not arrive") from None
            continue
        _child.subs[self][2] += 1
        return dat


def _sock_poll(self, timeout=None, flags=zmq.POLLIN):
    if not _stepped():
        return _orig["sock_poll"](self, timeout, flags)
    return _child.wait([self], timeout, lambda ms: _real_poll([self], ms, flags))


def _poller_poll(self, timeout=None):
    if not _stepped():
        return _orig["poller_poll"](self, timeout)
    socks = [s for s, _ in self.sockets]
    return _child.wait(socks, timeout, lambda ms: _orig["poller_poll"](self, ms))


def _monotonic() -> float:
    return _child.now() * 1e-9


def _monotonic_ns() -> int:
    return _child.now()


def _sleep(s: float) -> None:
    if not _stepped():
        return _orig["sleep"](s)
    if s > 0:
        _child.wait([], s * 1000.0, lambda ms: [])


def _sub_init(self, service, conflate=False, addr=None):
    _orig["sub_init"](self, service, conflate, addr)
    if not conflate and addr is None and service in SERVICE_INDEX:
        i = SERVICE_INDEX[service]
        _child.subs[self.sock] = [i, int(_child.cb[SENT + i]), 0]
        _child.cb[SUBSCRIBED + i] += 1


def _pub_init(self, service, tcp_bind=None):
    from cereal.messaging.endpoints import ipc_endpoint
    if service not in SERVICES:
        raise KeyError(f"unknown service {service!r}; services are declared in cereal/services.py")
    self.service = service
    self.sock = zmq.Context.instance().socket(zmq.XPUB)  # XPUB: we see the driver's subscription arrive
    self.sock.setsockopt(zmq.LINGER, 0)
    self.sock.setsockopt(zmq.SNDHWM, 100_000)
    self.sock.bind(ipc_endpoint(service, create=True))
    self.lockstep_subscribed = False
    _child.cb[BOUND + SERVICE_INDEX[service]] = 1
    _child.cb[BINDS] += 1


def _pub_send(self, dat) -> None:
    if not self.lockstep_subscribed:
        if not _real_poll([self.sock], 10_000):
            raise LockstepError(f"nobody subscribed to {self.service} within 10 s")
        _orig["recv"](self.sock, 0)
        self.lockstep_subscribed = True
    self.sock.send(dat, copy=len(dat) < 65536)
    _child.cb[PUBLISHED + SERVICE_INDEX[self.service]] += 1


def install(path: str) -> None:
    """Puts this process under lockstep (call before importing the daemon)."""
    global _child
    from cereal import messaging
    _child = _Child(path)
    _orig.update(recv=zmq.Socket.recv, sock_poll=zmq.Socket.poll, poller_poll=zmq.Poller.poll, sleep=time.sleep,
                 sub_init=messaging.SubSocket.__init__)
    zmq.Socket.recv, zmq.Socket.poll, zmq.Poller.poll = _recv, _sock_poll, _poller_poll
    time.monotonic, time.monotonic_ns, time.sleep = _monotonic, _monotonic_ns, _sleep
    messaging.SubSocket.__init__ = _sub_init
    messaging.PubSocket.__init__, messaging.PubSocket.send = _pub_init, _pub_send


def apply_settings(spec: str) -> None:
    """`pkg.module:NAME=<json>;...`: module constants replaced before the daemon starts (e.g. a controller
    gain), so a test can show that changed behaviour shows up as a replay diff without editing the daemon."""
    for item in filter(None, (x.strip() for x in spec.split(";"))):
        target, _, value = item.partition("=")
        module, _, name = target.partition(":")
        mod = importlib.import_module(module)
        if not hasattr(mod, name):
            raise SystemExit(f"lockstep: {module} has no {name} to set")
        setattr(mod, name, json.loads(value))


def child_main() -> None:
    if len(sys.argv) < 2 or ENV not in os.environ:
        sys.exit(f"usage: {ENV}=<control file> python -m tools.replay.lockstep <module> [args...]")
    install(os.environ[ENV])
    apply_settings(os.environ.get(SET_ENV, ""))
    module, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    child_main()
