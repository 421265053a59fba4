"""The driver's side of process replay's stepped clock (cereal/messaging/stepped.py is the contract): runs one
daemon as a real process and feeds it recorded messages one at a time, returning what each one made it publish.
Its inputs are bound when the daemon first subscribes to them (or up front with `inputs=`); its outputs are
subscribed when the daemon binds them, so what a daemon reads and writes is learned from its own sockets.

    d = LockstepDaemon("selfdrive.car.card", ["--car", "TOYOTA_RAV4"], t_start_ns=t0)
    d.start()
    for ev in events:                      # in logMonoTime order
        for service, dat in d.feed(ev.which(), ev.as_builder().to_bytes(), ev.logMonoTime):
            ...
    d.stop()
"""

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable

import zmq

from cereal.messaging.endpoints import ipc_endpoint
from cereal.messaging.stepped import (
    BINDS,
    BOUND,
    CLOCK,
    ENV,
    IDLE,
    IDLE_DEADLINE,
    IDLE_MASK,
    PUBLISHED,
    SENT,
    SERVICE_INDEX,
    STATE,
    SUBSCRIBED,
    LockstepError,
    channel,
    control_block,
)
from cereal.services import SERVICES
from common.clock import CLOCK_ENV, STEPPED
from common.paths import run_dir

SERVICE_NAMES = list(SERVICES)


class LockstepDaemon:
    def __init__(self, module: str, args: Iterable[str] = (), inputs: Iterable[str] = (), t_start_ns: int = 0,
                 env: dict[str, str] | None = None, log_path: str | None = None, step_timeout_s: float = 30.0):
        self.module, self.args = module, list(args)
        self.env, self.log_path, self.step_timeout_s = env or {}, log_path, step_timeout_s
        self.path = os.path.join(run_dir(create=True), f"ls-{module.rsplit('.', 1)[-1]}")
        self.cb = control_block(self.path, create=True)
        self.cb[CLOCK] = t_start_ns
        ctx = zmq.Context.instance()
        self.wake = self._sock(ctx, zmq.PUSH, channel(self.path, "wake"))
        self.idle = self._sock(ctx, zmq.PULL, channel(self.path, "idle"))
        self.inputs: dict[str, zmq.Socket] = {}
        for s in inputs:
            self._bind_input(s)
        self.seen_subs: Counter[str] = Counter()
        self.outputs: dict[str, zmq.Socket] = {}
        self.binds_seen = 0
        self.received: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()   # inputs the daemon had no socket for when their turn came
        self.poller = zmq.Poller()
        self.poller.register(self.idle, zmq.POLLIN)
        self.proc: subprocess.Popen | None = None
        self._out: list[tuple[str, bytes]] = []

    def _bind_input(self, service: str) -> zmq.Socket:
        if self.cb[BOUND + SERVICE_INDEX[service]]:
            raise LockstepError(f"{self.module} publishes {service}, which the replay feeds it")
        sock = self._sock(zmq.Context.instance(), zmq.XPUB, ipc_endpoint(service, create=True), hwm=True)
        sock.setsockopt(zmq.XPUB_VERBOSE, 1)  # every subscriber's subscription, not just the first
        self.inputs[service] = sock
        return sock

    @staticmethod
    def _sock(ctx, kind: int, addr: str, hwm: bool = False) -> zmq.Socket:
        sock = ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        if hwm:
            sock.setsockopt(zmq.SNDHWM, 100_000)
        sock.bind(addr)
        return sock

    @property
    def now_ns(self) -> int:
        return int(self.cb[CLOCK])

    def start(self) -> list[tuple[str, bytes]]:
        """Starts the daemon and waits until it first waits for input; returns what it published meanwhile."""
        err = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen([sys.executable, "-m", "tools.replay.lockstep", self.module, *self.args],
                                     stdout=subprocess.DEVNULL, stderr=err,
                                     env={**os.environ, **self.env, CLOCK_ENV: STEPPED, ENV: self.path})
        if err is not subprocess.DEVNULL:
            err.close()
        self._wait_idle(timeout_s=max(self.step_timeout_s, 60.0))
        return self._take()

    def advance(self, t_ns: int) -> list[tuple[str, bytes]]:
        """Moves the clock to t_ns, letting the daemon time out at each deadline on the way."""
        self._advance(t_ns)
        return self._take()

    def _advance(self, t_ns: int) -> None:
        while self.cb[STATE] == IDLE and self.cb[IDLE_DEADLINE] < t_ns:
            self.cb[CLOCK] = max(self.now_ns, int(self.cb[IDLE_DEADLINE]))
            self.wake.send(b"")
            self._wait_idle()
        self.cb[CLOCK] = max(self.now_ns, t_ns)

    def feed(self, service: str, dat: bytes, t_ns: int) -> list[tuple[str, bytes]]:
        """Delivers one input stamped t_ns; returns (service, bytes) of everything published since the last call."""
        self._advance(t_ns)
        i = SERVICE_INDEX[service]
        want = int(self.cb[SUBSCRIBED + i])
        if want == 0:
            self.dropped[service] += 1
            return self._take()
        if service not in self.inputs:
            self._bind_input(service)  # the daemon's SUB connects to it on its own (ZMQ reconnects within 0.1 s)
        self._confirm_subscriptions(service, want)
        waits = bool(int(self.cb[IDLE_MASK]) >> i & 1) or self.cb[STATE] != IDLE
        self.inputs[service].send(dat, copy=False)
        self.cb[SENT + i] += 1
        if waits:
            self._wait_idle()
        return self._take()

    def _confirm_subscriptions(self, service: str, want: int) -> None:
        sock, deadline = self.inputs[service], time.monotonic() + 10.0
        while self.seen_subs[service] < want:
            if sock.poll(100):
                if sock.recv()[:1] == b"\x01":
                    self.seen_subs[service] += 1
            elif time.monotonic() > deadline:
                raise LockstepError(f"{self.module}: its subscription to {service} never arrived")
            self._check_alive()

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise LockstepError(f"{self.module} exited with code {self.proc.returncode}" +
                                (f" (its log: {self.log_path})" if self.log_path else ""))

    def _new_outputs(self) -> None:
        if self.cb[BINDS] == self.binds_seen:
            return
        self.binds_seen = int(self.cb[BINDS])
        for i, s in enumerate(SERVICE_NAMES):
            if s not in self.outputs and self.cb[BOUND + i]:
                if s in self.inputs:
                    raise LockstepError(f"{self.module} publishes {s}, which the replay feeds it")
                sock = zmq.Context.instance().socket(zmq.SUB)
                sock.setsockopt(zmq.LINGER, 0)
                sock.setsockopt(zmq.RCVHWM, 0)
                sock.setsockopt(zmq.SUBSCRIBE, b"")
                sock.connect(ipc_endpoint(s))
                self.outputs[s] = sock
                self.poller.register(sock, zmq.POLLIN)

    def _drain_outputs(self) -> None:
        for s, sock in self.outputs.items():
            while True:
                try:
                    self._out.append((s, sock.recv(zmq.NOBLOCK)))
                except zmq.Again:
                    break
                self.received[s] += 1

    def _wait_idle(self, timeout_s: float | None = None) -> None:
        """Until the daemon's next idle notice, then until every message it published has arrived here."""
        limit = timeout_s or self.step_timeout_s
        deadline = time.monotonic() + limit
        while True:
            self._new_outputs()
            ready = dict(self.poller.poll(20))
            self._drain_outputs()
            if self.idle in ready:
                self.idle.recv()
                break
            if not ready:
                self._check_alive()
                if time.monotonic() > deadline:
                    raise LockstepError(f"{self.module} did not finish a step within {limit} s")
        self._new_outputs()
        while any(self.received[s] < self.cb[PUBLISHED + SERVICE_INDEX[s]] for s in self.outputs):
            if not self.poller.poll(5000):
                self._check_alive()
                raise LockstepError(f"{self.module}: published messages did not arrive")
            self._drain_outputs()

    def _take(self) -> list[tuple[str, bytes]]:
        out, self._out = self._out, []
        return out

    def stop(self) -> int | None:
        """Ends the daemon (SIGTERM, then SIGKILL) and closes the sockets; returns its exit code."""
        rc = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            rc = self.proc.returncode
        for sock in (self.wake, self.idle, *self.inputs.values(), *self.outputs.values()):
            sock.close(0)
        for suffix in ("", "-wake", "-idle"):
            try:
                os.unlink(self.path + suffix)
            except OSError:
                pass
        return rc

    def __enter__(self) -> "LockstepDaemon":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
