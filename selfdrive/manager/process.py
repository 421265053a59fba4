"""One supervised OS process: start, notice its exit, restart it with backoff, stop it.

Each child is `python -m selfdrive.manager.launcher <name> <module>` in its own session (so its own
process group): a Ctrl-C in the terminal reaches only the manager, which then stops the children in
order, and signalling the group also reaches anything a daemon spawned itself.
"""

import os
import signal
import subprocess
import sys

import psutil

from common.swaglog import cloudlog
from selfdrive.manager.process_config import ProcessConfig, RestartPolicy

LAUNCHER = "selfdrive.manager.launcher"
MANAGER_PID_ENV = "ROADPILOT_MANAGER_PID"


class Backoff:
    """Delay before the next restart: initial, doubling, capped; reset once a run lasted `stable_s`."""

    def __init__(self, policy: RestartPolicy):
        self.policy = policy
        self._next = policy.initial_s

    def on_exit(self, ran_for_s: float) -> float:
        """Seconds to wait before restarting a process that just exited after running `ran_for_s`."""
        if ran_for_s >= self.policy.stable_s:
            self._next = self.policy.initial_s
        delay = self._next
        self._next = min(self.policy.max_s, self._next * 2)
        return delay


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


class ManagedProcess:
    """State of one table row across restarts. `exit_code` follows Popen: -N means killed by signal N."""

    def __init__(self, cfg: ProcessConfig, env: dict[str, str]):
        self.cfg = cfg
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.ps: psutil.Process | None = None
        self.backoff = Backoff(cfg.restart)
        self.restarts = 0
        self.exit_code = 0
        self.crashed = False          # exited on its own since its last start; the next start is a restart
        self.started_at = 0.0
        self.next_start = 0.0         # monotonic time before which a restart waits

    @property
    def name(self) -> str:
        return self.cfg.name

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def may_start(self, now: float) -> bool:
        return not self.running and now >= self.next_start and (not self.crashed or self.cfg.restart.enabled)

    def start(self, now: float) -> None:
        if self.crashed:
            self.restarts += 1
        self.crashed = False
        self.proc = subprocess.Popen([sys.executable, "-m", LAUNCHER, self.cfg.name, self.cfg.module],
                                     env=self.env, stdin=subprocess.DEVNULL, start_new_session=True)
        self.started_at = now
        try:
            self.ps = psutil.Process(self.proc.pid)
            self.ps.cpu_percent(None)  # the first reading only sets the reference point
        except psutil.Error:
            self.ps = None
        cloudlog.info(f"{'restarted' if self.restarts else 'started'} {self.name}",
                      extra={"daemon": self.name, "pid": self.proc.pid, "restarts": self.restarts})

    def poll(self, now: float) -> bool:
        """Reaps the child if it exited on its own; schedules its restart. True when it just exited."""
        if self.proc is None or self.proc.returncode is not None or self.proc.poll() is None:
            return False
        self.exit_code = self.proc.returncode
        self._kill_leftovers()
        ran_for = now - self.started_at
        self.crashed = True
        if self.cfg.restart.enabled:
            delay = self.backoff.on_exit(ran_for)
            self.next_start = now + delay
            cloudlog.error(f"{self.name} died: {describe_exit(self.exit_code)}; restarting in {delay:.1f} s",
                           extra={"daemon": self.name, "pid": self.pid, "exit_code": self.exit_code,
                                  "ran_for_s": round(ran_for, 2), "restart_in_s": delay})
        else:
            cloudlog.error(f"{self.name} died: {describe_exit(self.exit_code)}; its policy is not to restart",
                           extra={"daemon": self.name, "pid": self.pid, "exit_code": self.exit_code})
        return True

    def signal(self, sig: int) -> None:
        """Signals the child's whole process group (a daemon's own children included)."""
        if self.running:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def reap(self) -> bool:
        """Collects the exit status after a stop signal, without restarting. True once it is gone."""
        if self.proc is None:
            return True
        if self.proc.returncode is None and self.proc.poll() is None:
            return False
        self.exit_code = self.proc.returncode
        self._kill_leftovers()
        return True

    def _kill_leftovers(self) -> None:
        # The group may outlive its leader (a daemon's own children); right after the reap the id is still ours.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def cpu_percent(self) -> float:
        if not self.running or self.ps is None:
            return 0.0
        try:
            return float(self.ps.cpu_percent(None))
        except psutil.Error:
            return 0.0
