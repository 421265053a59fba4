"""Process replay: each daemon as a real process, on the stepped clock (cereal/messaging/stepped.py), against a fixed
input route; its outputs are compared with stored reference outputs, field by field.

    python -m tests.process_replay.process_replay [daemon...]     compare with the references, print the diff
                                                                  (the daemons side by side, one process each)
    python -m tests.process_replay.regen [daemon...]              regenerate the references (ref/*.zst)

What a daemon is fed and what is compared is not listed here: it is what the daemon's own sockets do.
The lockstep child reports every service the daemon subscribes to and publishes; the replay feeds it
the route's messages of the services it subscribes to and records everything it publishes. Where a
daemon declares its services (a module-level `SUBSCRIBES` and `PUBLISHES`), a test checks
the declaration against what the sockets did, so neither can drift.
"""

import contextlib
import importlib
import importlib.util
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import zstandard

from cereal import messaging
from cereal.messaging.stepped import SERVICE_INDEX, SUBSCRIBED
from common.params import Params
from tests.process_replay.compare import compare, format_diff
from tests.process_replay.inputs import ROUTES, as_bytes, digest
from tools.replay.lockstep_driver import LockstepDaemon

REF_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref")


@dataclass(frozen=True)
class DaemonConfig:
    name: str
    module: str
    route: str                          # which input route of inputs.ROUTES
    args: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()        # output fields that are timing, not behaviour
    tolerance: float = 1e-5             # relative (and absolute below 1) float tolerance
    takes_car: bool = False             # run as the route's car (`--car`, from its carParams), not identifying it


TIMING = ("logMonoTime",)
CONFIGS: tuple[DaemonConfig, ...] = (
    DaemonConfig("card", "selfdrive.car.card", "car", takes_car=True),
    DaemonConfig("plannerd", "selfdrive.controls.plannerd", "stack", ignore=("longitudinalPlan.solverExecutionTime",)),
    DaemonConfig("controlsd", "selfdrive.controls.controlsd", "stack", ignore=("controlsState.cumLagMs",)),
    DaemonConfig("selfdrived", "selfdrive.selfdrived.selfdrived", "stack"),
    # modeld and calibrationd are not replayed here: their inputs are camera frames, which the input routes do not
    # carry (the closed-loop and determinism tests drive them)
)


def available() -> tuple[DaemonConfig, ...]:
    """The configured daemons whose module exists in this checkout."""
    return tuple(c for c in CONFIGS if importlib.util.find_spec(c.module) is not None)


def config(name: str) -> DaemonConfig:
    for c in CONFIGS:
        if c.name == name:
            return c
    raise KeyError(f"no process replay config {name!r}; known: {[c.name for c in CONFIGS]}")


@dataclass
class ReplayResult:
    outputs: list[bytes]
    subscribed: set[str]
    published: set[str]
    dropped: Counter = field(default_factory=Counter)


def set_params_from(inputs: list[bytes]) -> None:
    """The CarParams param from the route's first carParams (what card wrote when it was recorded)."""
    for dat in inputs:
        ev = messaging.log_from_bytes(dat)
        if ev.which() == "carParams":
            Params().put("CarParams", ev.carParams.as_builder().to_bytes())
            return


def car_of(inputs: list[bytes]) -> str | None:
    """The platform the route's first carParams names; None when it has none (or names no opendbc car)."""
    from selfdrive.car.fingerprinting import known_platform
    for dat in inputs:
        ev = messaging.log_from_bytes(dat)
        if ev.which() == "carParams":
            name = ev.carParams.carFingerprint
            return name if known_platform(name) else None
    return None


def replay(cfg: DaemonConfig, inputs: list[bytes], env: dict[str, str] | None = None,
           log_path: str | None = None, car: str | None = None) -> ReplayResult:
    """Runs `cfg`'s daemon over `inputs` (Event bytes in time order) in lockstep; returns what it published.
    `car`: the platform a `takes_car` daemon runs as (default: the inputs' carParams; without one it identifies)."""
    set_params_from(inputs)
    events = [(ev.which(), ev.logMonoTime, dat) for dat in inputs for ev in (messaging.log_from_bytes(dat),)]
    outputs: list[bytes] = []
    car = car or (car_of(inputs) if cfg.takes_car else None)
    args = cfg.args + (("--car", car) if cfg.takes_car and car else ())
    d = LockstepDaemon(cfg.module, args, t_start_ns=events[0][1] - 1_000_000, env=env, log_path=log_path)
    try:
        outputs += [dat for _, dat in d.start()]
        for service, t, dat in events:
            outputs += [out for _, out in d.feed(service, dat, t)]
        outputs += [dat for _, dat in d.advance(events[-1][1] + 10_000_000)]
        subscribed = {s for s, i in SERVICE_INDEX.items() if d.cb[SUBSCRIBED + i] > 0}
        published = set(d.outputs)
        dropped = Counter({s: n for s, n in d.dropped.items() if s in subscribed})
    finally:
        d.stop()
    return ReplayResult(outputs, subscribed, published, dropped)


def declared(module: str) -> tuple[set[str] | None, set[str] | None]:
    """(subscribes, publishes) as the daemon module declares them; None where it declares nothing."""
    mod = importlib.import_module(module)
    subs = getattr(mod, "SUBSCRIBES", None)
    pubs = getattr(mod, "PUBLISHES", None)
    return (None if subs is None else set(subs)), (None if pubs is None else set(pubs))


# ---------------------------------------------------------------------------------------------------
# references: ref/<name>.zst holds the outputs (framed Events, like an rlog); its first message is not an
# output but a logMessage whose text is the digest of the inputs they were made from.

def ref_path(name: str) -> str:
    return os.path.join(REF_DIR, f"{name}.zst")


def save_ref(name: str, input_digest: str, outputs: list[bytes]) -> str:
    os.makedirs(REF_DIR, exist_ok=True)
    head = messaging.new_message("logMessage")
    head.logMonoTime = 0
    head.logMessage.name, head.logMessage.msg = "process_replay", f"inputs {input_digest}"
    data = zstandard.ZstdCompressor(level=19).compress(b"".join([head.to_bytes(), *outputs]))
    with open(ref_path(name), "wb") as f:
        f.write(data)
    return ref_path(name)


def load_ref(name: str) -> tuple[str, list]:
    """(input digest, output Events) of a stored reference; FileNotFoundError when there is none."""
    from selfdrive.loggerd.logreader import LogReader
    evs = list(LogReader(ref_path(name), sort_by_time=False))
    head = evs[0].logMessage.msg if evs and evs[0].which() == "logMessage" else ""
    return head.removeprefix("inputs "), evs[1:]


def run_inputs(cfg: DaemonConfig) -> list[bytes]:
    return as_bytes(ROUTES[cfg.route]())


def check(cfg: DaemonConfig, env: dict[str, str] | None = None, log_path: str | None = None) -> list[str]:
    """The readable diff of `cfg`'s daemon against its reference ([] when they agree)."""
    inputs = run_inputs(cfg)
    want_digest, ref = load_ref(cfg.name)
    if want_digest != digest(inputs):
        return [f"{cfg.name}: the input route changed since the reference was made "
                f"(inputs {digest(inputs)}, reference made from {want_digest}); regenerate the references"]
    result = replay(cfg, inputs, env, log_path)
    new = [messaging.log_from_bytes(d) for d in result.outputs]
    return format_diff(cfg.name, compare(ref, new, cfg.tolerance, TIMING + cfg.ignore))


@contextlib.contextmanager
def apart(tag: str) -> Iterator[None]:
    """For a process of its own (a forked worker): its own sockets (prefix) and data directory, so daemons replay
    side by side (each lockstep pair keeps at most one core busy: the driver and the daemon take turns)."""
    os.environ["ROADPILOT_PREFIX"] = f"{tag}-{os.getpid()}"
    os.environ["ROADPILOT_DATA"] = tempfile.mkdtemp(prefix=f"rp-{tag}-")
    try:
        yield
    finally:
        shutil.rmtree(os.environ["ROADPILOT_DATA"], ignore_errors=True)


def _check_apart(name: str) -> list[str]:
    with apart(f"pr-{name}"):
        return check(config(name))


def main(argv: list[str] | None = None) -> int:
    names = (sys.argv[1:] if argv is None else argv) or [c.name for c in available()]
    try:
        for name in names:
            config(name)  # an unknown name fails before anything starts
    except KeyError as e:
        print(e.args[0], file=sys.stderr)
        return 2
    with ProcessPoolExecutor(len(names), mp_context=mp.get_context("fork")) as pool:
        diffs = list(pool.map(_check_apart, names))
    for name, diff in zip(names, diffs, strict=True):
        print(f"{name}: {'no diff' if not diff else 'DIFF'}")
        for line in diff:
            print("  " + line)
    return 1 if any(diffs) else 0


if __name__ == "__main__":
    sys.exit(main())
