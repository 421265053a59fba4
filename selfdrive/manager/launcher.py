"""Entry point of every managed process: `python -m selfdrive.manager.launcher <name> <module>`.

It ties the child's life to the manager's, names the process "roadpilot:<name>" (ps, top, psutil),
binds the log name, then imports `<module>` and runs its `main()`.

Death signal: on Linux, prctl(PR_SET_PDEATHSIG, SIGKILL) makes the kernel kill this process when the
manager dies, even by SIGKILL, so a crashed manager leaves no orphans. SIGKILL rather than SIGTERM
because an orphan that ignores or mishandles SIGTERM must not survive; daemons that write files
(loggerd) already have to cope with being killed mid-write. The signal fires when the *thread*
that forked the child exits: the manager starts children from its main thread only. If the manager
died before the prctl call took effect, the parent id has already changed and we exit at once.
Elsewhere (no prctl) the fallback is the manager's own shutdown, which stops every child's group.
"""

import ctypes
import ctypes.util
import importlib
import os
import signal
import sys

from setproctitle import setproctitle

from common.swaglog import cloudlog, cloudlog_bind
from selfdrive.manager.process import MANAGER_PID_ENV

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def set_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Asks the kernel to send `sig` to this process when its parent dies. False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m selfdrive.manager.launcher <name> <module>", file=sys.stderr)
        sys.exit(2)
    name, module = args

    manager_pid = int(os.environ.get(MANAGER_PID_ENV, "0") or 0)
    if manager_pid and set_death_signal(signal.SIGKILL) and os.getppid() != manager_pid:
        sys.exit(1)  # the manager died before the death signal was armed: we are already an orphan
    setproctitle(f"roadpilot:{name}")
    cloudlog_bind(name=name)

    sys.argv = [module]  # as under `python -m <module>`: a main() that parses sys.argv sees no arguments of ours
    try:
        importlib.import_module(module).main()
    except Exception:
        # Logged here so the traceback reaches the route log; the manager logs the exit and restarts us.
        cloudlog.exception(f"{name} crashed")
        sys.exit(1)


if __name__ == "__main__":
    main()
