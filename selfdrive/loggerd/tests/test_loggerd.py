import os
import re
import signal
import subprocess
import sys
import time

import pytest

from cereal import messaging
from cereal.services import SERVICES
from common.paths import routes_dir, run_dir
from selfdrive.loggerd import loggerd
from selfdrive.loggerd.framing import FramingError, is_one_message, message_size, restamped
from selfdrive.loggerd.logreader import LogReader
from selfdrive.loggerd.route import Route
from selfdrive.loggerd.route_writer import RouteWriter, new_route_dir

# service -> (Hz, field holding the test's counter)
PUBLISHED = {
    "carState": (100, "vEgo"),
    "modelV2": (20, "frameId"),
    "liveCalibration": (4, "validBlocks"),
    "deviceState": (2, "uptime"),
    "logMessage": (2, "levelnum"),   # logged, but not in the qlog
}


def counter(ev) -> int:
    s = ev.which()
    return int(getattr(getattr(ev, s), PUBLISHED[s][1]))


def start_loggerd(tmp_path, segment_seconds: float, env: dict[str, str] | None = None,
                  preexec_fn=None) -> tuple[subprocess.Popen, str]:
    """Starts loggerd (with `env` added to ours) and waits for it to name its route."""
    err = open(tmp_path / "loggerd.stderr", "a")
    p = subprocess.Popen([sys.executable, "-m", "selfdrive.loggerd.loggerd", "--segment-seconds", str(segment_seconds)],
                         stderr=err, env={**os.environ, **(env or {})}, preexec_fn=preexec_fn)
    current = os.path.join(run_dir(), "current_route")
    deadline = time.monotonic() + 30
    while not os.path.exists(current):
        assert p.poll() is None, (tmp_path / "loggerd.stderr").read_text()
        assert time.monotonic() < deadline, "loggerd did not publish its route name"
        time.sleep(0.02)
    with open(current) as f:
        return p, f.read().strip()


def car_params(fingerprint: str, t_ns: int | None = None) -> bytes:
    msg = messaging.new_message("carParams")
    msg.carParams.carFingerprint = fingerprint
    if t_ns is not None:
        msg.logMonoTime = t_ns
    return msg.to_bytes()


def publish(pm: messaging.PubMaster, seconds: float, junk_at: int | None = None,
            first: int = 0, once: dict[int, tuple[str, bytes]] | None = None) -> dict[str, list[float]]:
    """Publishes PUBLISHED at their rates with counters first, first + 1...; returns each message's send time.
    `once`: tick (10 ms) -> (service, message) sent once at that tick."""
    sent: dict[str, list[float]] = {s: [] for s in PUBLISHED}
    start = time.monotonic()
    for tick in range(int(seconds * 100)):
        for s, (hz, field) in PUBLISHED.items():
            if tick % (100 // hz) == 0:
                msg = messaging.new_message(s)
                setattr(getattr(msg, s), field, first + len(sent[s]))
                pm.send(s, msg)
                sent[s].append(time.monotonic())
        if tick == junk_at:
            pm.sock["carState"].send(b"not a capnp message at all")  # loggerd must drop it and carry on
        if once and tick in once:
            pm.sock[once[tick][0]].send(once[tick][1])
        time.sleep(max(0.0, start + (tick + 1) * 0.01 - time.monotonic()))
    return sent


def by_service(lr) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {s: [] for s in PUBLISHED}
    for ev in lr:
        if ev.which() in out:  # loggerd also records its own loggerState
            out[ev.which()].append(counter(ev))
    return out


class TestLoggerdProcess:
    def setup_method(self):
        self.pm = messaging.PubMaster(PUBLISHED)  # bound first: loggerd's sockets connect to live endpoints

    def teardown_method(self):
        self.pm.close()

    def test_route_reads_back_complete_with_qlog_decimation(self, tmp_path):
        p, name = start_loggerd(tmp_path, 2.0)
        try:
            sent = publish(self.pm, 4.6, junk_at=150)
            time.sleep(0.3)  # let loggerd drain its sockets before it is told to stop
            p.send_signal(signal.SIGTERM)
            assert p.wait(10) == 0
        finally:
            p.kill()

        route = Route(name)
        assert sorted(os.listdir(routes_dir())) == [name] and len(route.segments) >= 3
        assert os.path.exists(os.path.join(route.path, "route.json"))
        lr = LogReader(name)
        rlog = by_service(lr)
        assert lr.problems == []
        for s, got in rlog.items():
            # slow joiner: count from the first message loggerd saw, which must be early in the run
            assert got and got[0] <= (100 if s == "carState" else 1), (s, got[:5])
            assert got == list(range(got[0], len(sent[s]))), f"{s}: missing or out of order"
        times = [ev.logMonoTime for ev in lr]
        assert times == sorted(times)

        qlog = by_service(LogReader(name, log_type="qlog"))
        for s, got in qlog.items():
            dec = SERVICES[s].decimation
            assert got == ([] if dec is None else rlog[s][::dec]), s

        for seg in route.segments:  # every segment is a complete log of its own
            seg_lr = LogReader(seg.path)
            assert len(list(seg_lr)) > 0 and seg_lr.problems == []
        assert "malformed message not logged" in (tmp_path / "loggerd.stderr").read_text()

    def test_sigkill_loses_at_most_the_last_second(self, tmp_path):
        # killed ~2 s into its second segment, so the last second is covered by periodic flushes, not rollover
        p, name = start_loggerd(tmp_path, 2.5)
        try:
            sent = publish(self.pm, 4.6)
            killed_at = time.monotonic()
            p.send_signal(signal.SIGKILL)
            p.wait(10)
        finally:
            p.kill()

        lr = LogReader(name)
        rlog = by_service(lr)  # reading a crashed route reports, never raises
        for s, got in rlog.items():
            assert got and got == list(range(got[0], got[0] + len(got))), f"{s}: gap in the log"
            must_have = sum(t < killed_at - 1.0 for t in sent[s])
            assert got[-1] + 1 >= must_have, f"{s}: lost more than the last second"
        route = Route(name)
        assert len(route.segments) >= 2
        for seg in route.segments[:-1]:  # closed at rollover: intact
            seg_lr = LogReader(seg.path)
            list(seg_lr)
            assert seg_lr.problems == []
        assert all(path.startswith(route.segments[-1].path) for path, _ in lr.problems)

    def test_sigint_closes_cleanly_with_no_data(self, tmp_path):
        p, name = start_loggerd(tmp_path, 60)
        try:
            p.send_signal(signal.SIGINT)
            assert p.wait(10) == 0
        finally:
            p.kill()
        assert not os.path.exists(os.path.join(run_dir(), "current_route"))  # nothing is being recorded now
        seg = Route(name).segments
        assert [s.number for s in seg] == [0]
        lr = LogReader(seg[0].path)
        # nothing arrived but (maybe, if it came back in time) loggerd's own loggerState: nothing else, nothing lost
        assert {ev.which() for ev in lr} <= {"loggerState"}
        assert all("empty file" in what for _, what in lr.problems), lr.problems


class TestRouteWriter:
    def msg(self, service: str, i: int) -> bytes:
        m = messaging.new_message(service)
        setattr(getattr(m, service), PUBLISHED[service][1], i)
        return m.to_bytes()

    def test_segments_roll_over_and_qlog_keeps_one_in_n(self):
        w = RouteWriter(routes_dir(), loggerd.logged_services(), segment_seconds=1.0, now=0.0)
        for i in range(300):  # 3 s of carState at 100 Hz, time passed in by hand
            w.log("carState", self.msg("carState", i))
            w.update(i * 0.01)
        w.close()
        route = Route(w.name)
        assert [s.number for s in route.segments] == [0, 1, 2]
        assert [counter(e) for e in LogReader(w.name)] == list(range(300))
        assert [counter(e) for e in LogReader(w.name, log_type="qlog")] == list(range(0, 300, 10))

    def test_flushed_frames_are_readable_while_the_file_is_open(self):
        w = RouteWriter(routes_dir(), loggerd.logged_services(), segment_seconds=60, now=0.0, flush_period=0.5)
        for i in range(10):
            w.log("carState", self.msg("carState", i))
        w.update(0.2)
        assert os.path.getsize(w.rlog.path) == 0  # still buffered: a crash now loses these
        w.update(0.6)
        w.log("carState", self.msg("carState", 10))
        path = w.rlog.path
        assert [counter(e) for e in LogReader(path)] == list(range(10))  # what a crash would leave
        w.close()
        assert [counter(e) for e in LogReader(path)] == list(range(11))

    def test_write_failure_is_counted_not_raised(self):
        w = RouteWriter(routes_dir(), loggerd.logged_services(), segment_seconds=60, now=0.0)
        os.close(w.rlog.fd)
        w.rlog.fd = os.open(os.devnull, os.O_RDONLY)  # writes now fail like a dead disk
        w.log("carState", self.msg("carState", 0))
        w.update(1.0)
        assert w.write_errors == 1
        w.close()

    @pytest.mark.parametrize("env, expected", [("driven", "driven"), ("wall", "wall"), (None, "wall")])
    def test_route_json_says_which_clock_the_daemons_ran_on(self, monkeypatch, env, expected):
        # a lockstep simulator's route is stamped with the world's time (common.clock)
        if env is None:
            monkeypatch.delenv("ROADPILOT_CLOCK", raising=False)
        else:
            monkeypatch.setenv("ROADPILOT_CLOCK", env)
        w = RouteWriter(routes_dir(), loggerd.logged_services(), segment_seconds=60, now=0.0)
        w.close()
        assert Route(w.name).meta()["clock"] == expected

    def test_route_names_never_collide(self):
        a, _ = new_route_dir(routes_dir(), base="2026-01-02--03-04-05")
        b, _ = new_route_dir(routes_dir(), base="2026-01-02--03-04-05")
        c, _ = new_route_dir(routes_dir())
        assert (a, b) == ("2026-01-02--03-04-05", "2026-01-02--03-04-05_2")
        assert re.fullmatch(r"\d{4}-\d\d-\d\d--\d\d-\d\d-\d\d(_\d+)?", c)

    def test_a_latched_service_starts_every_segment(self):
        # carParams as card sends it: once at start, once more (a new value) after 2.5 s; 1 s segments
        w = RouteWriter(routes_dir(), loggerd.logged_services(), segment_seconds=1.0, now=0.0)
        sent = {}
        for i in range(400):
            t_ns = 5_000_000_000 + i * 10_000_000
            if i in (20, 250):
                sent[i] = car_params("A" if i == 20 else "B", t_ns)
                w.log("carParams", sent[i])
            m = messaging.new_message("carState")
            m.logMonoTime, m.carState.vEgo = t_ns, i
            w.log("carState", m.to_bytes())
            w.update(i * 0.01)
        w.close()
        route = Route(w.name)
        assert [s.number for s in route.segments] == [0, 1, 2, 3]
        for log_type in ("rlog", "qlog"):
            for seg in route.segments:
                evs = list(LogReader(seg.path, log_type=log_type))
                if seg.number == 0:  # the first one, where it arrived
                    assert [e.as_builder().to_bytes() for e in evs if e.which() == "carParams"] == [sent[20]]
                    continue
                # first: a copy of the newest one from before the segment, stamped with the segment's earliest time
                # (its first carState in the rlog), otherwise as sent
                earliest = list(LogReader(seg.path))[1].logMonoTime
                assert evs[0].which() == "carParams" and evs[0].logMonoTime == earliest, (log_type, seg)
                newest = sent[20] if seg.number < 3 else sent[250]  # B came during segment 2: in its own place there
                assert restamped(evs[0].as_builder().to_bytes(), messaging.log_from_bytes(newest).logMonoTime) == newest
            whole = list(LogReader(w.name, log_type=log_type))
            assert [e.logMonoTime for e in whole] == sorted(e.logMonoTime for e in whole)  # in order, read whole
            # segment 0: A as sent; 1, 2: copies of A; 2: B as sent; 3: a copy of B
            assert [e.carParams.carFingerprint for e in whole if e.which() == "carParams"] == ["A", "A", "A", "B", "B"]
        # the qlog's 1-in-10 carState count was not moved by the copies
        assert [e.carState.vEgo for e in LogReader(w.name, log_type="qlog") if e.which() == "carState"] == \
            list(range(0, 400, 10))

    def test_latched_from_before_start_the_first_segment_and_one_after_a_failure(self):
        kept = car_params("A", 1_000)
        w = RouteWriter(routes_dir(), loggerd.logged_services(), segment_seconds=60, now=0.0,
                        latched={"carParams": kept, "carState": self.msg("carState", 0)})  # carState is not latched
        w.log("carState", self.msg("carState", 1))
        os.close(w.rlog.fd)
        w.rlog.fd = os.open(os.devnull, os.O_RDONLY)  # writes now fail like a dead disk
        w.update(1.0)
        assert (w.write_errors, w.lost) == (1, 1)  # the carState it logged; the copy was not a logged message
        w.log("carParams", car_params("B", 2_000))  # arrives while stopped: the segment after the fault starts with it
        w.update(10.0)                               # the retry: a fresh segment
        w.log("carState", self.msg("carState", 2))
        w.close()
        evs = list(LogReader(w.name))
        assert [(e.which(), e.carParams.carFingerprint if e.which() == "carParams" else e.carState.vEgo)
                for e in evs] == [("carParams", "B"), ("carState", 2)]
        assert [s.number for s in Route(w.name).segments] == [0]  # the failed segment's number was reused

    def test_latched_copies_sort_first_when_a_later_written_message_is_older(self):
        # loggerd drains socket by socket: a message written second may have waited longer than the first one
        w = RouteWriter(routes_dir(), loggerd.logged_services(), segment_seconds=60, now=0.0,
                        latched={"carParams": car_params("A", 1_000)})
        for service, t_ns in (("carState", 9_000_000), ("deviceState", 8_000_000)):
            m = messaging.new_message(service)
            m.logMonoTime = t_ns
            w.log(service, m.to_bytes())
        w.close()
        for by_time in (True, False):
            assert [(e.which(), e.logMonoTime) for e in LogReader(w.name, sort_by_time=by_time)][0] == \
                ("carParams", 8_000_000)

    def test_bad_segment_length_is_rejected(self):
        with pytest.raises(ValueError):
            RouteWriter(routes_dir(), loggerd.logged_services(), segment_seconds=0, now=0.0)
        with pytest.raises(SystemExit):
            loggerd.parse_args(["--segment-seconds", "-1"])


class TestFraming:
    def test_one_message_and_its_size(self):
        dat = messaging.new_message("carState").to_bytes()
        assert is_one_message(dat) and message_size(dat) == len(dat)
        assert message_size(dat[:3]) is None and message_size(dat + dat, len(dat)) == len(dat)

    @pytest.mark.parametrize("bad", [b"", b"junk", b"\xff" * 16, b"\0" * 8, messaging.new_message("carState")
                                     .to_bytes()[:-8]])
    def test_not_one_message(self, bad):
        assert not is_one_message(bad)

    def test_impossible_header_raises(self):
        with pytest.raises(FramingError):
            message_size(b"\xff\xff\xff\xff\0\0\0\0")
