"""loggerd as a real process: a restart continues the run's route (and starts it with the latched carParams it
kept), a kernel-refused write stops and resumes logging, a message on the wrong socket is refused. Every wait is
for a condition, with a generous timeout."""

import errno
import os
import resource
import signal
import time

from cereal import messaging
from common.paths import routes_dir, run_dir
from selfdrive.loggerd.logreader import LogReader
from selfdrive.loggerd.route import Route
from selfdrive.loggerd.route_writer import ROUTE_ENV, new_route_dir
from selfdrive.loggerd.tests.test_loggerd import by_service, car_params, publish, start_loggerd

WAIT = 90.0  # s; generous: the machine is shared and slow


def stop(p) -> None:
    p.send_signal(signal.SIGTERM)
    assert p.wait(30) == 0


def file_size_limit(nbytes: int):
    """A preexec_fn: writes past `nbytes` in any file fail with EFBIG (the kernel enforces it, like a full disk)."""
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the writer instead of failing the write
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return limit


def can_msg(i: int, rand: bytes) -> bytes:
    """A `can` message carrying counter `i` and 512 incompressible bytes, so the log grows fast."""
    msg = messaging.new_message("can", size=64)
    for k, frame in enumerate(msg.can):
        frame.address, frame.dat = i if k == 0 else k, rand[8 * k:8 * k + 8]
    return msg.to_bytes()


class TestRestart:
    def setup_method(self):
        self.pm = messaging.PubMaster(["carState", "modelV2", "liveCalibration", "deviceState", "logMessage",
                                       "carParams"])

    def teardown_method(self):
        self.pm.close()

    def test_kill_and_restart_continue_one_route(self, tmp_path):
        name, _ = new_route_dir(routes_dir())          # as the manager does at the start of a run
        env = {ROUTE_ENV: name}
        p, got = start_loggerd(tmp_path, 1.0, env)
        try:
            assert got == name
            # carParams once, 0.3 s in (as card: at start, then not for 50 s): the only one of the whole route
            publish(self.pm, 2.5, once={30: ("carParams", car_params("TOYOTA_RAV4"))})
            p.send_signal(signal.SIGKILL)
            p.wait(10)
        finally:
            p.kill()
        first_run = [s.number for s in Route(name).segments]
        assert first_run == list(range(len(first_run))) and len(first_run) >= 2

        os.remove(os.path.join(run_dir(), "current_route"))  # the killed loggerd left it behind
        p, got = start_loggerd(tmp_path, 1.0, env)
        try:
            assert got == name
            sent = publish(self.pm, 2.5, first=10000)
            time.sleep(0.3)
            stop(p)
        finally:
            p.kill()

        route = Route(name)
        numbers = [s.number for s in route.segments]
        assert sorted(os.listdir(routes_dir())) == [name]
        assert numbers == list(range(len(numbers))) and len(numbers) > len(first_run) + 1  # 0..n, continued
        assert route.meta()["restarts"] == 1
        lr = LogReader(name)
        rlog = by_service(lr)
        killed = route.segments[len(first_run) - 1].path
        assert all(path.startswith(killed) for path, _ in lr.problems)  # only the killed segment's tail is cut
        for s, got in rlog.items():
            before = [c for c in got if c < 10000]
            after = [c for c in got if c >= 10000]
            assert before and before == list(range(before[0], before[0] + len(before))), s
            assert after and after == list(range(after[0], 10000 + len(sent[s]))), s   # after the restart: to the end
        for seg in route.segments[len(first_run):]:  # the second run's segments are whole logs
            seg_lr = LogReader(seg.path)
            assert len(list(seg_lr)) > 0 and seg_lr.problems == []

        # 1 s segments and one carParams: the first segment holds it, every other one of both loggerds starts with it
        # (the restarted one kept it in the run directory), rlog and qlog
        for log_type in ("rlog", "qlog"):
            for seg in route.segments:
                evs = list(LogReader(seg.path, log_type=log_type))
                if not evs and seg.path == killed:
                    continue  # killed before its first flush: nothing in it at all
                cars = [e.carParams.carFingerprint for e in evs if e.which() == "carParams"]
                assert cars == ["TOYOTA_RAV4"], (log_type, seg.number, cars)
                assert seg.number == 0 or evs[0].which() == "carParams", (log_type, seg.number)


class TestDiskFull:
    LIMIT = 256 * 1024  # bytes per file: ~3 s of the can stream below

    def test_refused_writes_stop_logging_and_it_resumes_in_a_new_segment(self, tmp_path):
        pm = messaging.PubMaster(["can"])
        states = messaging.sub_sock("loggerState")
        p, name = start_loggerd(tmp_path, 60, preexec_fn=file_size_limit(self.LIMIT))
        stopped = resumed = None
        try:
            i, resumed_at, deadline = 0, None, time.monotonic() + WAIT
            while resumed_at is None or time.monotonic() < resumed_at + 1.0:  # ~1 s more into the new segment
                assert time.monotonic() < deadline, f"stopped: {stopped}, resumed: {resumed}"
                assert p.poll() is None, (tmp_path / "loggerd.stderr").read_text()
                pm.send("can", can_msg(i, os.urandom(512)))
                i += 1
                for ev in messaging.drain_sock(states):
                    ls = ev.loggerState
                    if stopped is None and not ls.writing and ls.writeErrors:
                        stopped = ls.to_dict()
                    elif stopped is not None and resumed is None and ls.writing and ls.segment > stopped["segment"]:
                        resumed, resumed_at = ls.to_dict(), time.monotonic()
                time.sleep(0.01)
            stop(p)
        finally:
            p.kill()
            pm.close()
            states.close()

        assert stopped["error"] == os.strerror(errno.EFBIG) and stopped["route"] == name
        assert resumed["error"] == "" and resumed["dropped"] > 0 and resumed["writeErrors"] >= 1
        stderr = (tmp_path / "loggerd.stderr").read_text()
        assert "log write failed: logging stopped" in stderr and "logging resumed" in stderr

        route = Route(name)
        lr = LogReader(name)
        cans = [ev.can[0].address for ev in lr if ev.which() == "can"]
        assert lr.problems == []              # cut back to the last whole frame at the fault: reads cleanly
        assert cans == sorted(set(cans))      # in order, nothing twice
        assert any(b - a > 100 for a, b in zip(cans, cans[1:], strict=False))  # what came while stopped is missing
        by_segment = {}
        for seg in route.segments:
            assert os.path.getsize(seg.log_path("rlog")) <= self.LIMIT
            by_segment[seg.number] = [ev.can[0].address for ev in LogReader(seg.path) if ev.which() == "can"]
        fault, after = by_segment[stopped["segment"]], by_segment[resumed["segment"]]
        assert fault and after and after[0] > fault[-1] + 100   # readable up to the fault, and again after it
        logged_states = [ev.loggerState for ev in lr if ev.which() == "loggerState"]
        assert logged_states and logged_states[-1].writeErrors >= 1   # the route itself says what happened


class TestWrongService:
    def test_a_message_on_the_wrong_socket_is_not_recorded(self, tmp_path):
        pm = messaging.PubMaster(["deviceState", "carState"])
        states = messaging.sub_sock("loggerState")
        p, name = start_loggerd(tmp_path, 60)
        last = None
        try:
            i, deadline = 0, time.monotonic() + WAIT
            while last is None or last.wrongService < 3 or last.logged < 3:
                assert time.monotonic() < deadline, last
                good_ds, good_cs, wrong = (messaging.new_message(s) for s in ("deviceState", "carState", "carState"))
                good_ds.deviceState.uptime = good_cs.carState.vEgo = i
                wrong.carState.vEgo = 999.0
                pm.send("deviceState", good_ds)
                pm.send("carState", good_cs)
                pm.sock["deviceState"].send(wrong.to_bytes())   # a carState on the deviceState socket
                i += 1
                for ev in messaging.drain_sock(states):
                    last = ev.loggerState.as_builder()
                time.sleep(0.1)
            time.sleep(0.3)
            stop(p)
        finally:
            p.kill()
            pm.close()
            states.close()

        assert last.dropped >= last.wrongService >= 3
        lr = LogReader(name)
        events = list(lr)
        assert lr.problems == []
        assert [ev for ev in events if ev.which() == "carState" and ev.carState.vEgo == 999.0] == []
        assert any(ev.which() == "deviceState" for ev in events) and any(ev.which() == "carState" for ev in events)
        assert "message on the wrong service not logged" in (tmp_path / "loggerd.stderr").read_text()
