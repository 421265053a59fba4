"""Messaging over ZMQ: every service is one PUB socket bound by its producer, read by SUB sockets.

Endpoints are `ipc://` sockets under one run directory per `ROADPILOT_PREFIX` (see `endpoints.py`),
so two stacks or parallel tests never see each other; `tcp://` serves readers on other machines.
Every message is one Cap'n Proto `Event`. A malformed message is counted and logged by the reader,
never raised out of `SubMaster.update()`.
"""

import os
import struct
import time
from collections import deque
from collections.abc import Iterable

import capnp
import zmq

from cereal import log
from cereal.messaging import stepped
from cereal.messaging.endpoints import ipc_endpoint, tcp_endpoint
from cereal.services import SERVICES
from common import clock
from common.mapped_words import as_words, map_words
from common.paths import run_dir
from common.swaglog import cloudlog, log_due

__all__ = [
    "PubMaster", "SubMaster", "PubSocket", "SubSocket", "MalformedMessage",
    "new_message", "log_from_bytes", "pub_sock", "sub_sock", "recv_one", "drain_sock",
]

MAX_SEGMENTS = 512          # a sane Event never has more; a garbage header claiming more is rejected early
MAX_DRAIN = 10_000          # messages taken from one socket per update, so one flooding producer cannot starve us
CATCH_UP_MS = 1000          # driven clock: how long a reader waits for a message of an earlier step still on its way
                            # (it was sent: only a loaded machine delays it)


class MalformedMessage(ValueError):
    """Bytes that are not one complete, well-formed Cap'n Proto Event."""


def _context() -> zmq.Context:
    return zmq.Context.instance()


def new_message(service: str | None = None, size: int | None = None,
                valid: bool = True) -> capnp.lib.capnp._DynamicStructBuilder:
    """A fresh Event builder with logMonoTime set; `service` initialises that union member (`size` for lists)."""
    msg = log.Event.new_message(logMonoTime=clock.monotonic_ns(), valid=valid)
    if service is not None:
        if service not in SERVICES:
            raise KeyError(f"unknown service {service!r}; services are declared in cereal/services.py")
        if size is None:
            msg.init(service)
        else:
            msg.init(service, size)
    return msg


def _segments(dat: bytes) -> list:
    """Splits a framed capnp message into its segments, checking the segment table against the buffer."""
    n = len(dat)
    if n < 8 or n % 8:
        raise MalformedMessage(f"{n} bytes is not a framed capnp message (needs a multiple of 8, at least 8)")
    nseg = int.from_bytes(dat[0:4], "little") + 1
    if nseg == 1:  # the common case: one segment right after the 8-byte table
        if 8 + 8 * int.from_bytes(dat[4:8], "little") != n:
            raise MalformedMessage(f"segment table says {8 + 8 * int.from_bytes(dat[4:8], 'little')} bytes, got {n}")
        # small messages: a bytes copy is cheaper than a memoryview for pycapnp; big ones are not copied
        return [dat[8:] if n < 65536 else memoryview(dat)[8:]]
    if nseg > MAX_SEGMENTS:
        raise MalformedMessage(f"segment table claims {nseg} segments")
    header = (4 + 4 * nseg + 7) & ~7
    if n < header:
        raise MalformedMessage("message ends inside its segment table")
    sizes = struct.unpack_from(f"<{nseg}I", dat, 4)
    if header + 8 * sum(sizes) != n:
        raise MalformedMessage(f"segment table says {header + 8 * sum(sizes)} bytes, got {n}")
    mv, segments, off = memoryview(dat), [], header
    for size in sizes:
        segments.append(mv[off:off + 8 * size])
        off += 8 * size
    return segments


def _parse(dat: bytes, service: str | None):
    """Event reader whose union is readable (and is `service`, when given); raises MalformedMessage."""
    try:
        msg = log.Event.from_segments(_segments(dat))
        which = msg._which_str()
        if service is not None and which != service:
            raise MalformedMessage(f"a {which} message on the {service} socket")
        msg.logMonoTime  # noqa: B018 - reads the root struct now, so a bad root pointer fails here
    except (capnp.KjException, ValueError, AttributeError) as e:
        if isinstance(e, MalformedMessage):
            raise
        raise MalformedMessage(str(e).splitlines()[0][:200]) from e
    return msg


def log_from_bytes(dat: bytes):
    """Parses one framed Event and follows its union pointer.

    Raises MalformedMessage for anything that is not exactly one complete Event whose union member
    can be read.
    """
    msg = _parse(dat, None)
    try:
        getattr(msg, msg._which_str())
    except (capnp.KjException, ValueError) as e:
        raise MalformedMessage(str(e).splitlines()[0][:200]) from e
    return msg


class _Published:
    """Driven clock only: `<run dir>/published` holds, per service, the stamp of the newest message sent. A reader
    woken at a step then knows which messages of earlier steps exist, and waits for one that ZMQ has not delivered
    yet (a loaded machine), so what it reads never depends on how fast the machine delivered."""

    INDEX = {s: i for i, s in enumerate(SERVICES)}

    def __init__(self):
        self.words = as_words(map_words(os.path.join(run_dir(create=True), "published"), len(SERVICES), create=True))

    def put(self, service: str, stamp: int) -> None:
        self.words[self.INDEX[service]] = stamp

    def get(self, service: str) -> int:
        return self.words[self.INDEX[service]]


_published_maps: dict[str, _Published] = {}


def _published() -> _Published | None:
    """This run's table of newest stamps, on the driven clock; None on a car."""
    if not clock.driven():
        return None
    d = run_dir()
    if d not in _published_maps:
        _published_maps[d] = _Published()
    return _published_maps[d]


class PubSocket:
    """One service's publisher: binds the ipc endpoint (and tcp, when asked).

    `watch`: also count its subscribers (an XPUB socket, told of every subscribe and unsubscribe), for a sender
    that must not start before its readers are connected: a PUB drops what it sends before a SUB has joined."""

    def __init__(self, service: str, tcp_bind: str | None = None, watch: bool = False):
        if service not in SERVICES:
            raise KeyError(f"unknown service {service!r}; services are declared in cereal/services.py")
        self.service = service
        self.watch = watch
        self._subscribers = 0
        # stepped clock (process replay): an XPUB whose first message waits for the replay's subscription
        self.stepper = stepped.stepper(any_thread=True)
        self.sock = _context().socket(zmq.XPUB if watch or self.stepper else zmq.PUB)
        if watch:
            self.sock.setsockopt(zmq.XPUB_VERBOSER, 1)  # every (un)subscribe, not only a topic's first and last
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 100_000 if self.stepper else 2000)  # the replay reads once per step
        self.sock.bind(ipc_endpoint(service, create=True))
        if tcp_bind is not None:
            self.sock.bind(tcp_endpoint(service, tcp_bind))
        if self.stepper is not None:
            self.stepper.bound(service)

    def send(self, dat: bytes) -> None:
        if self.stepper is None:
            # PUB never blocks: a subscriber that does not keep up loses messages at its high-water mark.
            self.sock.send(dat, zmq.NOBLOCK, copy=len(dat) < 65536)
            return
        if self._subscribers == 0 and not self.watch:  # stepped: the first message waits for the replay to hear it
            if not self.sock.poll(int(stepped.FIRST_READER_S * 1000)):
                raise stepped.LockstepError(f"nobody subscribed to {self.service} within {stepped.FIRST_READER_S} s")
            self.sock.recv()
            self._subscribers = 1
        self.sock.send(dat, copy=len(dat) < 65536)
        self.stepper.published(self.service)

    def subscribers(self) -> int:
        """How many subscribers are connected now (a watched socket only). Each SUB subscribes once, to everything;
        a message sent after this counted one reaches it."""
        if not self.watch:
            raise ValueError(f"{self.service}: subscribers are counted on a watched publisher only")
        while True:
            try:
                note = self.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return self._subscribers
            if note[:1] == b"\x01":
                self._subscribers += 1
            elif note[:1] == b"\x00":
                self._subscribers -= 1

    def close(self) -> None:
        self.sock.close(0)


class SubSocket:
    """One service's subscriber. `conflate` keeps only the newest message (for readers that want the latest)."""

    def __init__(self, service: str, conflate: bool = False, addr: str | None = None):
        if service not in SERVICES:
            raise KeyError(f"unknown service {service!r}; services are declared in cereal/services.py")
        self.service = service
        self.sock = _context().socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        if conflate:
            self.sock.setsockopt(zmq.CONFLATE, 1)
        else:
            self.sock.setsockopt(zmq.RCVHWM, 2000)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.connect(ipc_endpoint(service) if addr is None else tcp_endpoint(service, addr))
        # stepped clock (process replay): what the replay sent us is counted, so a read never misses one in flight
        self.stepper = stepped.stepper(any_thread=True) if not conflate and addr is None else None
        if self.stepper is not None:
            self.stepper.subscribed(self.sock, service)

    def receive(self, timeout_ms: int | None = 100) -> bytes | None:
        """The next message's bytes, or None after `timeout_ms` (0: don't wait). Never waits forever."""
        if timeout_ms is not None and timeout_ms > 0 and not wait_for_any([self], timeout_ms):
            return None
        return self.receive_nowait()

    def receive_nowait(self) -> bytes | None:
        """The next message waiting (None: none)."""
        if (st := _stepper(self)) is not None:
            return st.recv(self.sock)
        try:
            return self.sock.recv(zmq.NOBLOCK)
        except zmq.Again:
            return None

    def close(self) -> None:
        self.sock.close(0)


def _stepper(sock: SubSocket):
    """The stepper when `sock` is counted by one and this is the stepped thread (else None: a plain socket)."""
    return stepped.stepper() if sock.stepper is not None else None


def wait_for_any(socks: list[SubSocket], timeout_ms: int) -> bool:
    """Whether one of `socks` has a message within `timeout_ms` (on the stepped clock: of its time)."""
    if socks and (st := _stepper(socks[0])) is not None:
        return st.wait([s.sock for s in socks], timeout_ms)
    return bool(zmq.zmq_poll([(s.sock, zmq.POLLIN) for s in socks], timeout_ms))


def pub_sock(service: str, tcp_bind: str | None = None) -> PubSocket:
    return PubSocket(service, tcp_bind)


def sub_sock(service: str, conflate: bool = False, addr: str | None = None) -> SubSocket:
    return SubSocket(service, conflate, addr)


_dropped: dict[str, int] = {}


def _log_drop(service: str, why: str, **fields) -> None:
    # per service: a flood of garbage stays visible without flooding the log (log_due)
    n = _dropped[service] = _dropped.get(service, 0) + 1
    if log_due(n):
        cloudlog.warning(why, extra={"service": service, "dropped_total": n, **fields})


def _parse_or_log(service: str, dat: bytes):
    try:
        msg = _parse(dat, service)
        getattr(msg, service)
    except (MalformedMessage, capnp.KjException, ValueError) as e:
        _log_drop(service, "malformed message dropped", bytes=len(dat), error=str(e)[:200])
        return None
    return msg


def recv_one(sock: SubSocket, timeout_ms: int | None = 100) -> capnp.lib.capnp._DynamicStructReader | None:
    """The next well-formed Event on `sock`, or None on timeout or a malformed message (logged)."""
    dat = sock.receive(timeout_ms)
    return None if dat is None else _parse_or_log(sock.service, dat)


def drain_sock(sock: SubSocket, wait_for_one: bool = False) -> list:
    """Every well-formed Event waiting on `sock` (malformed ones are logged and skipped)."""
    out = []
    if wait_for_one:
        msg = recv_one(sock, timeout_ms=None)
        if msg is not None:
            out.append(msg)
    for _ in range(MAX_DRAIN):
        dat = sock.receive(0)
        if dat is None:
            break
        msg = _parse_or_log(sock.service, dat)
        if msg is not None:
            out.append(msg)
    return out


class PubMaster:
    """Publishers for a set of services: `pm.send("carState", msg_or_bytes)`."""

    def __init__(self, services: Iterable[str], tcp_bind: str | None = None, watch: Iterable[str] = ()):
        watch = set(watch)
        self.sock = {s: PubSocket(s, tcp_bind, watch=s in watch) for s in services}
        self.published = _published()

    def send(self, service: str, dat) -> None:
        stamp = None
        if not isinstance(dat, bytes | bytearray | memoryview):
            stamp = dat.logMonoTime if self.published is not None else None
            dat = dat.to_bytes()
        if self.published is not None:
            if stamp is None:
                try:
                    stamp = _parse(bytes(dat), None).logMonoTime
                except MalformedMessage:
                    stamp = None  # not a message: nobody waits for it
            # before the message goes: a peer that got it may move the world on at once, and a reader woken then
            # must know it exists (written after, a loaded machine could let the reader look first and miss it)
            if stamp is not None:
                self.published.put(service, stamp)
        self.sock[service].send(dat)

    def close(self) -> None:
        for s in self.sock.values():
            s.close()


class _FreqTracker:
    """Producer rate from the messages' own logMonoTime, so a reader that drains in batches still
    measures the producer, not its own polling."""

    def __init__(self, freq: float):
        self.freq = freq
        self.times: deque[int] = deque(maxlen=max(5, min(100, int(freq))))  # about one second of messages

    def add(self, log_mono_time: int) -> None:
        self.times.append(log_mono_time)

    def ok(self) -> bool:
        if self.freq <= 1e-3:
            return True  # on-change service: no rate contract
        if len(self.times) < 2:
            return False
        span = (self.times[-1] - self.times[0]) * 1e-9
        if span <= 0:
            return False
        avg = (len(self.times) - 1) / span
        return 0.8 * self.freq <= avg <= 1.25 * self.freq


class SubMaster:
    """Subscribes to services and keeps, per service, the newest message and its health.

    `update(timeout_ms)` waits at most `timeout_ms` for new data (for the `poll` service when given,
    else for any), then takes everything waiting. Health per service:
      updated  - a new message arrived in this update
      alive    - the last one arrived within 10 periods (on-change services: ever arrived)
      freq_ok  - the producer's rate over about the last second is within 0.8..1.25x the contract
      valid    - the newest message's own `valid` flag
    Malformed messages are counted in `malformed[service]` and logged, never raised.

    On the driven clock (common.clock: the lockstep simulator) a message is taken once the clock has passed its stamp:
    one stamped at the present step (a peer's answer to the same input) waits for the next update after the world
    steps on, as if it had come a moment later, so whether a daemon sees a peer's answer to this step never depends on
    which of the two the machine ran first. The poll service, which wakes us, is taken at once. On a car every message
    is from the past: nothing waits.
    """

    def __init__(self, services: Iterable[str], poll: str | None = None, ignore_alive: Iterable[str] = (),
                 ignore_avg_freq: Iterable[str] = (), ignore_valid: Iterable[str] = (), addr: str | None = None,
                 conflate: bool = False):
        self.services = list(services)
        self.poll = poll
        if poll is not None and poll not in self.services:
            raise ValueError(f"poll service {poll!r} is not among the subscribed services")
        self.ignore_alive = set(ignore_alive)
        self.ignore_avg_freq = set(ignore_avg_freq)
        self.ignore_valid = set(ignore_valid)
        self.sock = {s: SubSocket(s, conflate, addr) for s in self.services}
        self.waited = [self.sock[s] for s in (self.services if poll is None else [poll])]

        self.frame = -1
        self.data = {s: getattr(new_message(s, 0 if s in _LIST_SERVICES else None), s) for s in self.services}
        self.updated = dict.fromkeys(self.services, False)
        self.seen = dict.fromkeys(self.services, False)
        self.recv_time = dict.fromkeys(self.services, 0.0)
        self.recv_frame = dict.fromkeys(self.services, 0)
        self.logMonoTime = dict.fromkeys(self.services, 0)
        self.alive = dict.fromkeys(self.services, False)
        self.freq_ok = dict.fromkeys(self.services, False)
        self.valid = dict.fromkeys(self.services, False)
        self.malformed = dict.fromkeys(self.services, 0)
        self.parsed_total = dict.fromkeys(self.services, 0)
        self.freq = {s: _FreqTracker(SERVICES[s].frequency) for s in self.services}
        self.hold = clock.driven()
        self.published = _published()
        self.newest = dict.fromkeys(self.services, 0)  # driven clock: the newest stamp received (taken or held)
        # driven clock: what was stamped up to now may have been sent before we subscribed: never waited for
        self.subscribed_ns = clock.monotonic_ns() if self.hold else 0
        # driven clock: messages stamped at the present, taken once the world steps on
        self.pending: dict[str, deque] = {s: deque(maxlen=MAX_DRAIN) for s in self.services}

    def __getitem__(self, service: str):
        return self.data[service]

    def update(self, timeout_ms: int = 100) -> None:
        # the process's clock: the world's in lockstep, the recording's in process replay (common.clock)
        clock.wait(lambda ms: wait_for_any(self.waited, ms), timeout_ms / 1000)
        self.frame += 1
        self.updated = dict.fromkeys(self.services, False)
        now_ns = clock.monotonic_ns() if self.hold else 0
        for s in self.services:
            held = self.pending[s] if self.hold and s != self.poll else None
            latest = None
            while held and held[0].logMonoTime < now_ns:
                latest = held.popleft()
            latest = self._drain(s, held, now_ns, latest)
            if self.published is not None and s != self.poll:
                # a message of an earlier step that was sent but has not reached us yet: wait for it
                want = self.published.get(s)
                if max(self.newest[s], self.subscribed_ns) < want < now_ns:
                    latest = self._catch_up(s, held, now_ns, latest, want)
                self.newest[s] = max(self.newest[s], min(want, now_ns - 1))  # not waited for twice
            if latest is not None:
                self._take(s, latest, clock.monotonic())
        self._check_health(clock.monotonic())

    def _catch_up(self, s: str, held, now_ns: int, latest, want: int):
        """Waits (at most CATCH_UP_MS) until the message stamped `want` has come, taking what comes meanwhile: the
        socket may deliver an older one first, and taking that alone would make what we read depend on load."""
        deadline = time.monotonic() + CATCH_UP_MS / 1000
        while self.newest[s] < want:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0 or not self.sock[s].sock.poll(left_ms):
                _log_drop(s, "a message of an earlier step did not come", want=want, newest=self.newest[s])
                break
            latest = self._drain(s, held, now_ns, latest)
        return latest

    def _drain(self, s: str, held, now_ns: int, latest):
        """Everything waiting on `s`'s socket: checked, timed, held when stamped at the present (driven clock);
        returns the newest one taken (or `latest`)."""
        sock = self.sock[s]
        for _ in range(MAX_DRAIN):
            if (dat := sock.receive_nowait()) is None:
                break
            try:
                # every message is checked and timed; only the newest one per update is exposed
                msg = _parse(dat, s)
            except MalformedMessage as e:
                self.malformed[s] += 1
                _log_drop(s, "malformed message dropped", bytes=len(dat), error=str(e))
                continue
            self.freq[s].add(msg.logMonoTime)
            self.parsed_total[s] += 1
            self.newest[s] = max(self.newest[s], msg.logMonoTime)
            if held is not None and (held or msg.logMonoTime >= now_ns):
                held.append(msg)
                continue
            latest = msg
        return latest

    def update_msgs(self, cur_time: float, msgs: list) -> None:
        """Folds already-parsed Events in (the entry point for replay and lockstep drivers)."""
        self.frame += 1
        self.updated = dict.fromkeys(self.services, False)
        for msg in msgs:
            s = msg.which()
            if s in self.data:
                self.freq[s].add(msg.logMonoTime)
                self.parsed_total[s] += 1
                self._take(s, msg, cur_time)
        self._check_health(cur_time)

    def _take(self, s: str, msg, cur_time: float) -> None:
        try:
            self.data[s] = getattr(msg, s)
        except (capnp.KjException, ValueError) as e:
            self.malformed[s] += 1
            _log_drop(s, "malformed message dropped", error=str(e)[:200])
            return
        self.updated[s] = True
        self.seen[s] = True
        self.logMonoTime[s] = msg.logMonoTime
        self.valid[s] = msg.valid
        self.recv_time[s] = cur_time
        self.recv_frame[s] = self.frame

    def _check_health(self, cur_time: float) -> None:
        for s in self.services:
            f = SERVICES[s].frequency
            if f > 1e-3:
                self.alive[s] = self.seen[s] and (cur_time - self.recv_time[s]) < 10.0 / f
            else:
                self.alive[s] = self.seen[s]
            self.freq_ok[s] = self.alive[s] and self.freq[s].ok()

    def _all(self, flags: dict[str, bool], ignore: set[str], services: Iterable[str] | None) -> bool:
        return all(flags[s] for s in (self.services if services is None else services) if s not in ignore)

    def all_alive(self, services: Iterable[str] | None = None) -> bool:
        return self._all(self.alive, self.ignore_alive, services)

    def all_freq_ok(self, services: Iterable[str] | None = None) -> bool:
        return self._all(self.freq_ok, self.ignore_avg_freq, services)

    def all_valid(self, services: Iterable[str] | None = None) -> bool:
        return self._all(self.valid, self.ignore_valid, services)

    def all_checks(self, services: Iterable[str] | None = None) -> bool:
        """True when every (given) service is alive, on frequency and valid: what a producer copies into `valid`."""
        return self.all_alive(services) and self.all_freq_ok(services) and self.all_valid(services)

    def close(self) -> None:
        for s in self.sock.values():
            s.close()


def _list_services() -> frozenset[str]:
    fields = log.Event.schema.fields
    return frozenset(s for s in SERVICES if fields[s].proto.slot.type.which() == "list")


_LIST_SERVICES = _list_services()
