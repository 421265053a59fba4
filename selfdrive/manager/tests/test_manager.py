"""The manager with real processes: restarts, clean stops, no orphans, no sockets left behind."""

import glob
import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from cereal import messaging
from common.paths import run_dir
from selfdrive.manager.tests.harness import GRACE_S

WAIT_S = 20.0  # generous: two shared cores, several Python processes starting at once


def start(args: list[str], **env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", *args], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def snapshot(sm: messaging.SubMaster) -> dict[str, dict]:
    return {p.name: {"pid": p.pid, "running": p.running, "shouldBeRunning": p.shouldBeRunning,
                     "exitCode": p.exitCode, "restarts": p.restarts, "cpuPercent": p.cpuPercent}
            for p in sm["managerState"].processes}


def wait_state(sm: messaging.SubMaster, cond, what: str) -> dict[str, dict]:
    deadline = time.monotonic() + WAIT_S
    last = None
    while time.monotonic() < deadline:
        sm.update(200)
        if sm.updated["managerState"]:
            last = snapshot(sm)
            if cond(last):
                return last
    pytest.fail(f"timed out waiting for {what}; last managerState: {last}")


def titled(pid: int, title: str) -> bool:
    """Whether process `pid` takes the title `title` within WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if title in " ".join(psutil.Process(pid).cmdline()):
            return True
        time.sleep(0.05)
    return False


def gone(pids: list[int], timeout: float = 5.0) -> bool:
    """True once none of `pids` is alive (zombies count as gone: they no longer run)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return True
        time.sleep(0.05)
    return False


def sockets_left(rd: str) -> list[str]:
    if not os.path.isdir(rd):
        return []
    return [n for n in os.listdir(rd) if os.path.exists(os.path.join(rd, n))]


@pytest.fixture
def procs():
    """Processes a test started; whatever is still alive at the end is killed, so a failure leaks nothing."""
    started: list[subprocess.Popen] = []
    pids: list[int] = []
    yield started, pids
    for pid in pids:  # first: orphans would hold the manager's output pipes open
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for p in started:
        if p.poll() is None:
            p.kill()
        try:
            p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def running_all(names):
    return lambda st: all(st.get(n, {}).get("running") and st[n]["pid"] for n in names)


class TestRealTable:
    """The real process table, narrowed with ONLY=, through the manager's own entry point."""

    NAMES = ("logmessaged", "hardwared")

    def start_manager(self, procs) -> subprocess.Popen:
        mgr = start(["selfdrive.manager.manager", "sim"], ONLY=",".join(self.NAMES))
        procs[0].append(mgr)
        return mgr

    def test_killed_child_is_restarted_with_new_pid(self, procs):
        sm = messaging.SubMaster(["managerState"])
        mgr = self.start_manager(procs)
        st = wait_state(sm, running_all(self.NAMES), "logmessaged and hardwared running")
        procs[1].extend(st[n]["pid"] for n in self.NAMES)
        assert st["loggerd"]["shouldBeRunning"] is False and st["loggerd"]["running"] is False  # not in ONLY
        old_pid = st["hardwared"]["pid"]
        # the manager reports a child running once it is started; the launcher names it a moment later
        assert titled(old_pid, "roadpilot:hardwared")

        os.kill(old_pid, signal.SIGKILL)
        st = wait_state(sm, lambda s: s["hardwared"]["restarts"] == 1 and s["hardwared"]["running"],
                        "hardwared restarted")
        procs[1].append(st["hardwared"]["pid"])
        assert st["hardwared"]["pid"] != old_pid
        assert st["hardwared"]["exitCode"] == -signal.SIGKILL
        assert st["logmessaged"]["restarts"] == 0
        assert psutil.pid_exists(st["hardwared"]["pid"])

        # A second manager on the same prefix is refused instead of fighting over the sockets.
        second = subprocess.run([sys.executable, "-m", "selfdrive.manager.manager", "sim"], capture_output=True,
                                text=True, timeout=30)
        assert second.returncode == 2
        assert "another manager" in second.stderr

        mgr.send_signal(signal.SIGINT)
        assert mgr.wait(timeout=15) == 0

    @pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
    def test_stop_leaves_no_children_and_no_sockets(self, procs, sig):
        sm = messaging.SubMaster(["managerState"])
        mgr = self.start_manager(procs)
        st = wait_state(sm, running_all(self.NAMES), "children running")
        pids = [st[n]["pid"] for n in self.NAMES]
        procs[1].extend(pids)
        rd = run_dir()
        assert sockets_left(rd), "expected the children's sockets while running"
        sm.close()

        mgr.send_signal(sig)
        assert mgr.wait(timeout=15) == 0
        assert gone(pids), f"children still alive after the manager stopped: {pids}"
        assert sockets_left(rd) == []
        assert not os.path.exists(rd)
        _, err = mgr.communicate()
        assert f"manager stopping ({signal.Signals(sig).name})" in err

    def test_the_end_of_the_run_is_recorded(self, procs):
        # the recorders stop after the daemons: the manager's word that hardwared stopped reaches the route
        from common.paths import routes_dir
        from selfdrive.loggerd.logreader import LogReader
        sm = messaging.SubMaster(["managerState"])
        mgr = start(["selfdrive.manager.manager", "sim"], ONLY="logmessaged,loggerd,hardwared")
        procs[0].append(mgr)
        st = wait_state(sm, running_all(("logmessaged", "loggerd", "hardwared")), "recorders and hardwared running")
        procs[1].extend(st[n]["pid"] for n in ("logmessaged", "loggerd", "hardwared"))
        # loggerd is recording (its first segment's log is open): "running" is only the manager's word that the
        # process started, and on a loaded machine its imports may still be going on
        deadline = time.monotonic() + 60
        while not glob.glob(os.path.join(routes_dir(), "*", "0", "rlog*")):
            assert time.monotonic() < deadline, "loggerd opened no segment in 60 s"
            time.sleep(0.05)
        time.sleep(1.0)  # and its subscriptions are connected
        mgr.send_signal(signal.SIGINT)
        assert mgr.wait(timeout=30) == 0
        (route,) = os.listdir(routes_dir())
        texts = [ev.logMessage.msg for ev in LogReader(os.path.join(routes_dir(), route), sort_by_time=False)
                 if ev.which() == "logMessage"]
        assert any("stopped hardwared" in t for t in texts), texts[-5:]
        assert any("manager stopping" in t for t in texts)

    def test_sigkilled_manager_takes_children_down(self, procs):
        sm = messaging.SubMaster(["managerState"])
        mgr = self.start_manager(procs)
        st = wait_state(sm, running_all(self.NAMES), "children running")
        pids = [st[n]["pid"] for n in self.NAMES]
        procs[1].extend(pids)

        mgr.kill()
        mgr.wait(timeout=10)
        assert gone(pids), "children outlived a SIGKILLed manager: the death signal did not fire"


class TestHarness:
    """The real manager over test daemons that misbehave in the ways daemons do."""

    def test_restart_policies_and_forced_stop(self, procs):
        sm = messaging.SubMaster(["managerState"])
        mgr = start(["selfdrive.manager.tests.harness"])
        procs[0].append(mgr)

        st = wait_state(sm, lambda s: s["crashd"]["restarts"] >= 2 and running_all(["sleeperd", "stubbornd"])(s)
                        and s["exitd"]["exitCode"] == 3, "crashd crash-looping, exitd exited")
        assert st["crashd"]["exitCode"] == 1
        assert st["exitd"] == {**st["exitd"], "running": False, "shouldBeRunning": True, "restarts": 0}
        assert st["replayonlyd"]["shouldBeRunning"] is False and st["replayonlyd"]["pid"] == 0
        stubborn = psutil.Process(st["stubbornd"]["pid"])
        grandchild = wait_for_child(stubborn)
        pids = [st["sleeperd"]["pid"], stubborn.pid, grandchild.pid]
        procs[1].extend(pids)

        mgr.send_signal(signal.SIGTERM)
        assert mgr.wait(timeout=GRACE_S + 15) == 0
        assert gone(pids), "stubbornd or its child survived: the group was not SIGKILLed after the grace period"
        _, err = mgr.communicate()
        assert "stubbornd ignored SIGTERM" in err
        assert "sleeperd ignored SIGTERM" not in err
        assert "crashd crashes on purpose" in err  # the launcher logged the crash with its traceback
        assert sockets_left(run_dir()) == []


def wait_for_child(p: psutil.Process) -> psutil.Process:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        kids = p.children()
        if kids:
            return kids[0]
        time.sleep(0.05)
    pytest.fail(f"{p.pid} started no child")


class TestLauncher:
    def test_missing_module_exits_nonzero_and_logs(self):
        r = subprocess.run([sys.executable, "-m", "selfdrive.manager.launcher", "nosuchd", "selfdrive.nosuchd"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1
        assert "nosuchd crashed" in r.stderr and "ModuleNotFoundError" in r.stderr

    def test_wrong_arguments(self):
        r = subprocess.run([sys.executable, "-m", "selfdrive.manager.launcher", "only-a-name"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2
        assert "usage" in r.stderr


def test_clean_run_dir_removes_sockets_and_files_keeps_subdirs(tmp_path):
    from selfdrive.manager.manager import clean_run_dir
    rd = tmp_path / "rp-x"
    rd.mkdir()
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(rd / "deviceState"))
    s.close()
    (rd / "current_route").write_text("r\n")
    clean_run_dir(str(rd))
    assert not rd.exists()

    rd.mkdir()
    (rd / "sub").mkdir()
    (rd / "manager.lock").write_text("1")
    clean_run_dir(str(rd))
    assert sorted(os.listdir(rd)) == ["sub"]
    clean_run_dir(str(tmp_path / "missing"))  # nothing to do, no error
