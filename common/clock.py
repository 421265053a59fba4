"""The clock the driving daemons read: their timestamps, rates, input deadlines and sleeps.

On a car it is the machine's CLOCK_MONOTONIC. Under the lockstep simulator it is the world's: the simulator writes
the time of each step (its CAN bus clock, 10 ms a step) into the run directory's `clock` file before it puts that
step's `can` on the bus, and every daemon of the stack reads it there. The manager's environment says which
(ROADPILOT_CLOCK=driven, set by the simulator's manager_env), once, at start; the daemons' code is the same in
every mode. On the driven clock:
  * a world that steps faster than real time looks like real time: every message is stamped with the world's time,
    so a service's rate (SubMaster's 0.8..1.25x check) and a message's age are the world's, whatever the machine's
    speed;
  * a world that waits for the stack stands still: an input is never late (card's "no `can` for 15 ms" cycle of
    its own, controlsd's and selfdrived's poll timeouts) while the world waits for their answer;
  * a message stamped at the present step is a peer's answer to the same step: SubMaster takes it once the world
    has stepped on, so which of two daemons ran first never shows (cereal/messaging).
A wait on the driven clock also ends after DRIVEN_WAIT_CAP_S of wall time (a world that stopped: the drive ended,
the simulator died), so a daemon still notices a stop and can be stopped.

Under process replay the clock is stepped (cereal/messaging/stepped.py): time is the recording's, a word the replay's
driver sets, and a wait ends when the driver moves it past the deadline or sends an input. Infrastructure that must
work whatever the world does (the manager, loggerd, camerad's source watch, the simulator itself) reads the
machine's clock (`time`) directly.
"""

import os
import time
from collections.abc import Callable
from typing import TypeVar

from common.mapped_words import as_words, map_words
from common.paths import PREFIX_ENV, RUN_ROOT_ENV, run_dir

CLOCK_ENV = "ROADPILOT_CLOCK"
STEPPED_ENV = "ROADPILOT_LOCKSTEP"   # the stepped clock's control file (cereal/messaging/stepped.py)
WALL, DRIVEN, STEPPED = "wall", "driven", "stepped"
KINDS = (WALL, DRIVEN, STEPPED)
CLOCK_FILE = "clock"
DRIVEN_WAIT_CAP_S = 10.0  # wall seconds a wait on a driven clock that does not move may last (a loaded machine
                          # stalls a world for seconds: an input that late in wall time is not late)
DRIVEN_SLICE_MS = 5       # a wait on the driven clock looks at it this often (an input ends it at once)

T = TypeVar("T")


def _path(k: str) -> str:
    """The file whose first word is the time: the simulator's clock file, or process replay's control block."""
    if k == STEPPED:
        from cereal.messaging.stepped import control_path
        return control_path()
    return os.path.join(run_dir(), CLOCK_FILE)


def _kind_of(value: str | None) -> str:
    k = value or WALL
    if k not in KINDS:
        raise ValueError(f"{CLOCK_ENV}={k!r}: use one of {', '.join(KINDS)}")
    return k


class _DrivenReader:
    """The driven clock's file, mapped once it exists. Until the simulator has written it, the machine's clock
    stands in (the simulator starts its clock from the machine's, so time does not run backwards)."""

    def __init__(self, path: str):
        self.path = path
        self.words: memoryview | None = None

    def ns(self) -> int:
        if self.words is None:
            try:
                self.words = as_words(map_words(self.path, 1, writable=False))
            except (FileNotFoundError, ValueError):  # not written yet
                return time.monotonic_ns()
        return self.words[0]


# The environment that decides which clock and where it is kept. Every daemon reads the clock tens of times a
# cycle: what these say is worked out again only when they change (tests switch them; a daemon never does), not on
# every read (8.5 us a read before, 0.07 of a core per simulated second over the lockstep stack). They are looked
# up in os.environ's own bytes store (CPython's os.environ._data, which every os.environ write updates): through
# os.environ.get an unset name costs a raised and caught KeyError, 1.8 us.
_ENV_KEYS = tuple(k.encode() for k in (CLOCK_ENV, PREFIX_ENV, RUN_ROOT_ENV, STEPPED_ENV))
_last: tuple[tuple, tuple[str, "_DrivenReader | None"]] = ((None,), (WALL, None))
_readers: dict[str, _DrivenReader] = {}  # by path: one mapping per clock file


def _clock() -> tuple[str, _DrivenReader | None]:
    """(kind, the driven or stepped clock's reader; None on the machine's clock)."""
    global _last
    get = os.environ._data.get  # type: ignore[attr-defined]
    key = (get(_ENV_KEYS[0]), get(_ENV_KEYS[1]), get(_ENV_KEYS[2]), get(_ENV_KEYS[3]))
    if key != _last[0]:
        k = _kind_of(os.environ.get(CLOCK_ENV))
        path = None if k == WALL else _path(k)
        reader = None if path is None else _readers.setdefault(path, _DrivenReader(path))
        _last = (key, (k, reader))
    return _last[1]


def kind() -> str:
    """WALL, DRIVEN or STEPPED, from the environment (an unknown value is an error: a daemon must not guess its
    time)."""
    return _clock()[0]


def driven() -> bool:
    """True when this process runs on the lockstep simulator's clock."""
    return _clock()[0] == DRIVEN


def stepped() -> bool:
    """True when this process runs under process replay (cereal/messaging/stepped.py)."""
    return _clock()[0] == STEPPED


def monotonic_ns() -> int:
    reader = _clock()[1]
    return time.monotonic_ns() if reader is None else reader.ns()


def monotonic() -> float:
    reader = _clock()[1]
    return time.monotonic() if reader is None else reader.ns() / 1e9


def wait(fn: Callable[[int], T | None], timeout_s: float) -> T | None:
    """Calls fn(ms) (a socket's receive or a poller's poll with a timeout in ms) until it returns something or
    `timeout_s` has passed on this clock; returns what it returned last (None or empty: nothing came)."""
    if not driven():  # the machine's clock, or the stepped one: fn itself waits until its deadline on this clock
        deadline = monotonic() + timeout_s
        while True:
            ms = max(0, int((deadline - monotonic()) * 1000))
            got = fn(ms)
            # under less than a millisecond left: done (no spinning on 0 ms waits; the stepped clock would never move
            # under them)
            if got or ms == 0 or monotonic() >= deadline:
                return got
    deadline_ns = monotonic_ns() + int(timeout_s * 1e9)
    cap = time.monotonic() + max(DRIVEN_WAIT_CAP_S, timeout_s)
    while True:
        got = fn(DRIVEN_SLICE_MS if timeout_s > 0 else 0)
        if got or monotonic_ns() >= deadline_ns or time.monotonic() >= cap:
            return got


def sleep(seconds: float) -> None:
    """Sleeps `seconds` of this clock (on the driven clock: until it has moved that far, at most the wall cap)."""
    if stepped() and (st := _stepper()) is not None:
        if seconds > 0:
            st.wait([], seconds * 1000.0)
        return
    if not driven():
        time.sleep(max(0.0, seconds))
        return
    wait(lambda ms: time.sleep(ms / 1000) or None, seconds)


def _stepper():
    from cereal.messaging.stepped import stepper
    return stepper()


class DrivenClock:
    """The simulator's side: the clock file, from `start_ns` (or where an earlier drive left it, if later: `ns`),
    moved by set_ns (one writer per run directory)."""

    def __init__(self, start_ns: int):
        run_dir(create=True)
        # written in place, never replaced: a daemon that mapped the file (an earlier drive's, or before we started)
        # must see our time, not keep an unlinked copy
        # a new file holds start_ns from its first byte: a daemon never reads a time of 0 from it
        self.words = as_words(map_words(_path(DRIVEN), 1, create=True, initial=(start_ns,)))
        # an earlier drive faster than real time may have left it ahead of the machine's clock: never backwards
        self.ns = max(start_ns, self.words[0])
        self.words[0] = self.ns

    def set_ns(self, ns: int) -> None:
        if ns < self.ns:
            raise ValueError(f"the driven clock runs forwards only ({ns} < {self.ns})")
        self.ns = ns
        self.words[0] = ns

    def close(self) -> None:
        m = self.words.obj
        self.words.release()
        m.close()
