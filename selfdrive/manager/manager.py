"""manager: starts every process of the mode, restarts crashed ones with backoff, publishes managerState.

Environment (read once, in `main`): BLOCK=a,b never starts those; ONLY=a,b starts only those.
SIGINT, SIGTERM and SIGHUP stop the run: every child's group gets SIGTERM, then SIGKILL after
`grace_s`, in waves: the recorders (logmessaged, encoderd, then loggerd) after the others; then the run
directory's socket files and run files (and the directory, when empty) are removed.
If the manager itself is killed, the children's death signal takes them down (see launcher.py).
One manager per ROADPILOT_PREFIX: a lock file in the run directory refuses a second one.

One run is one isolated world: the manager reserves the run's route name (loggerd keeps recording into it
across its own restarts, and the CLI reports exactly that route), picks a free UI port unless one is given,
and its params live under the prefix (common/paths.py). Persisted values that are corrupt are moved aside at
start and named in ParamsReset, for selfdrived's alert. A full disk never stops the manager: its own params
writes are logged when they fail.
"""

import fcntl
import os
import signal
import stat
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

from setproctitle import setproctitle

from cereal import messaging
from common.params import Params
from common.params_keys import ParamFlag
from common.paths import prefix, routes_dir, run_dir
from common.realtime import Ratekeeper
from common.swaglog import cloudlog, cloudlog_bind
from selfdrive.loggerd.route_writer import ROUTE_ENV, new_route_dir
from selfdrive.manager.process import MANAGER_PID_ENV, ManagedProcess
from selfdrive.manager.process_config import MODES, PROCESSES, Mode, ProcessConfig, RunContext
from selfdrive.ui.config import with_free_port

PUBLISHES = ("managerState",)
LOCK_FILE = "manager.lock"
# sim and replay are onroad for as long as they run. Device mode stays offroad (deviceState.started false): nothing
# reads the car's ignition (a CAN adapter has no ignition line), and no daemon waits for onroad: the stack runs from
# the start and waits for the car's bus.
ONROAD_MODES = frozenset({"sim", "replay"})


@dataclass(frozen=True)
class ManagerConfig:
    mode: Mode
    processes: tuple[ProcessConfig, ...] = PROCESSES
    block: frozenset[str] = frozenset()
    only: frozenset[str] | None = None    # None: no ONLY list
    grace_s: float = 5.0                  # SIGTERM -> SIGKILL
    rate_hz: float = 2.0

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r}: choose one of {', '.join(MODES)}")
        names = {p.name for p in self.processes}
        for var, listed in (("BLOCK", self.block), ("ONLY", self.only or frozenset())):
            for n in sorted(listed - names):
                raise ValueError(f"{var} names {n!r}, which is not a process; processes: {', '.join(sorted(names))}")

    def should_run(self, p: ProcessConfig) -> bool:
        if p.name in self.block or (self.only is not None and p.name not in self.only):
            return False
        return p.should_run(RunContext(self.mode))


def parse_names(value: str | None) -> frozenset[str] | None:
    """`"a, b,"` -> {"a", "b"}; unset, blank or only commas -> None (no list, rather than an empty one)."""
    names = frozenset(n.strip() for n in (value or "").split(",") if n.strip())
    return names or None


def config_from_env(mode: Mode, env: Mapping[str, str], **overrides) -> ManagerConfig:
    return ManagerConfig(mode=mode, block=parse_names(env.get("BLOCK")) or frozenset(),
                         only=parse_names(env.get("ONLY")), **overrides)


def reserve_route(env: Mapping[str, str]) -> str | None:
    """The run's route name: ROADPILOT_ROUTE when the caller chose it (the CLI does, to report it), else a fresh
    folder reserved now. None when the routes folder cannot be written (loggerd will say so, and retry)."""
    if env.get(ROUTE_ENV):
        return env[ROUTE_ENV]
    try:
        return new_route_dir(routes_dir())[0]
    except OSError as e:
        cloudlog.error("no route folder for this run", extra={"error": str(e)})
        return None


def run_env(env: Mapping[str, str]) -> dict[str, str]:
    """What every child of this run sees: the caller's environment with the run's route and UI port."""
    out = with_free_port(env)
    route = reserve_route(out)
    if route is not None:
        out[ROUTE_ENV] = route
    return {**out, MANAGER_PID_ENV: str(os.getpid())}


def put_logged(params: Params, key: str, value) -> None:
    """A manager's params write that a full disk cannot turn into a crash: logged instead."""
    try:
        params.put(key, value)
    except OSError as e:
        cloudlog.error("param not stored", extra={"key": key, "error": str(e)})


class Manager:
    def __init__(self, config: ManagerConfig, env: Mapping[str, str] | None = None):
        self.config = config
        env = dict(env) if env is not None else {**os.environ, MANAGER_PID_ENV: str(os.getpid())}
        self.procs = [ManagedProcess(p, env) for p in config.processes]
        self.wanted = {p.name: config.should_run(p.cfg) for p in self.procs}
        self.pm = messaging.PubMaster(list(PUBLISHES))

    def update(self, now: float) -> None:
        for p in self.procs:
            p.poll(now)
            if self.wanted[p.name] and p.may_start(now):
                p.start(now)

    def publish(self) -> None:
        msg = messaging.new_message("managerState")
        msg.managerState.mode = self.config.mode
        states = msg.managerState.init("processes", len(self.procs))
        for st, p in zip(states, self.procs, strict=True):
            st.name = p.name
            st.pid = p.pid
            st.running = p.running
            st.shouldBeRunning = self.wanted[p.name]
            st.exitCode = p.exit_code
            st.restarts = p.restarts
            st.cpuPercent = p.cpu_percent()
        self.pm.send("managerState", msg)

    def stop(self) -> None:
        """Stops the children in waves (ProcessConfig.stop_wave: the recorders last, so what the daemons say as
        they stop is on record): SIGTERM to each running child's group, SIGKILL to what is left after the grace."""
        for wave in sorted({p.cfg.stop_wave for p in self.procs}):
            self._stop_wave([p for p in self.procs if p.cfg.stop_wave == wave and p.running])
        self.pm.close()

    def _stop_wave(self, running: list) -> None:
        for p in running:
            p.signal(signal.SIGTERM)
        deadline = time.monotonic() + self.config.grace_s
        while time.monotonic() < deadline and not all(p.reap() for p in running):
            time.sleep(0.02)
        for p in running:
            if not p.reap():
                cloudlog.warning(f"{p.name} ignored SIGTERM for {self.config.grace_s:.1f} s: killing it",
                                 extra={"daemon": p.name, "pid": p.pid})
                p.signal(signal.SIGKILL)
                p.proc.wait()
                p.reap()
            cloudlog.info(f"stopped {p.name}", extra={"daemon": p.name, "pid": p.pid, "exit_code": p.exit_code})


def acquire_lock(rd: str) -> int:
    """Holds run_dir/manager.lock for this process's life; raises RuntimeError if another manager has it."""
    fd = os.open(os.path.join(rd, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise RuntimeError(f"another manager (pid {other}) is running with ROADPILOT_PREFIX={prefix()}") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def clean_run_dir(rd: str) -> None:
    """Removes what the run left in its directory, then the directory when that leaves it empty.

    Called once every child is gone: the socket files, loggerd's current_route and the lock describe a
    run that is over. Subdirectories are left alone (not ours to guess about).
    """
    try:
        entries = os.listdir(rd)
    except FileNotFoundError:
        return
    for name in entries:
        path = os.path.join(rd, name)
        try:
            mode = os.lstat(path).st_mode
            if stat.S_ISSOCK(mode) or stat.S_ISREG(mode):
                os.unlink(path)
        except FileNotFoundError:
            pass
    try:
        os.rmdir(rd)
    except OSError:
        pass


def run(config: ManagerConfig, duration: float | None = None) -> int:
    """Runs until SIGINT/SIGTERM/SIGHUP or for `duration` seconds; returns the exit status (0: clean stop)."""
    rd = run_dir(create=True)
    lock_fd = acquire_lock(rd)
    stopping: list[int] = []

    def on_signal(signum, frame):
        stopping.append(signum)  # a second Ctrl-C during the stop must not cut the cleanup short
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    why = "error"
    mgr = None
    params = Params()
    try:
        env = run_env(os.environ)
        try:
            params.clear_all(ParamFlag.CLEAR_ON_MANAGER_START)
        except OSError as e:
            cloudlog.error("run params not cleared", extra={"error": str(e)})
        if reset := params.reset_corrupt(ParamFlag.PERSISTENT):
            put_logged(params, "ParamsReset", reset)
        put_logged(params, "ManagerMode", config.mode)
        put_logged(params, "IsOnroad", config.mode in ONROAD_MODES)
        mgr = Manager(config, env)
        skipped = [p.name for p in mgr.procs if not mgr.wanted[p.name]]
        cloudlog.info(f"manager started in {config.mode} mode",
                      extra={"mode": config.mode, "skipped": skipped, "route": env.get(ROUTE_ENV),
                             "ui_port": env.get("ROADPILOT_UI_PORT"), "params_reset": reset})
        rk = Ratekeeper(config.rate_hz, wall=True)  # managerState is a slow input: on time in any world
        start = time.monotonic()
        # A stop signal is seen within one period (0.5 s): the handler only sets a flag, so it never
        # lands in the middle of starting a child.
        while not stopping and (duration is None or time.monotonic() - start < duration):
            mgr.update(time.monotonic())
            mgr.publish()
            rk.keep_time()
        why = signal.Signals(stopping[0]).name if stopping else "duration reached"
    finally:
        cloudlog.info(f"manager stopping ({why})")
        try:
            if mgr is not None:
                mgr.stop()
            put_logged(params, "IsOnroad", False)
        finally:
            clean_run_dir(rd)
        os.close(lock_fd)
        for s, h in old.items():
            signal.signal(s, h)
    return 0


def main(mode: Mode = "sim", duration: float | None = None) -> int:
    """The manager's entry: reads BLOCK/ONLY once, then runs. Returns a process exit status."""
    cloudlog_bind(name="manager")
    setproctitle("roadpilot:manager")
    try:
        config = config_from_env(mode, os.environ)
        return run(config, duration)
    except (ValueError, RuntimeError, OSError) as e:
        print(f"roadpilot manager: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "sim"))
