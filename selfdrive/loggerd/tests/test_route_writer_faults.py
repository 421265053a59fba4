"""RouteWriter on a failing disk and on a named route that a restarted loggerd continues (in process, time by hand)."""

import errno
import os

import pytest

from cereal import messaging
from common.paths import routes_dir
from selfdrive.loggerd import loggerd, route_writer
from selfdrive.loggerd.logreader import LogReader
from selfdrive.loggerd.route import Route
from selfdrive.loggerd.route_writer import RETRY_PERIOD, ROUTE_ENV, RouteWriter, check_route_name, new_route_dir

DT = 0.01  # one carState per step, 100 Hz


def car_state(i: int) -> bytes:
    m = messaging.new_message("carState")
    m.carState.vEgo = i
    return m.to_bytes()


def counters(source: str) -> tuple[list[int], list]:
    lr = LogReader(source)
    return [int(ev.carState.vEgo) for ev in lr], lr.problems


class FullDisk:
    """os.write as on a disk that fills up: while `full`, the first write is cut short, every later one fails."""

    def __init__(self, monkeypatch, err: int = errno.ENOSPC):
        self.real_write = os.write
        self.err = err
        self.full = False
        self.short_done = False
        monkeypatch.setattr(route_writer.os, "write", self.write)

    def write(self, fd: int, data) -> int:
        if not self.full:
            return self.real_write(fd, data)
        if not self.short_done and len(data) > 1:
            self.short_done = True  # part of a frame lands: the file now ends in garbage unless the writer cuts it
            return self.real_write(fd, memoryview(data)[:len(data) // 2])
        raise OSError(self.err, os.strerror(self.err))


class Feeder:
    """Logs carState 0, 1, 2... one per DT and updates the writer, as loggerd's loop would."""

    def __init__(self, w: RouteWriter):
        self.w, self.t, self.i = w, 0.0, 0
        self.accepted: list[int] = []

    def run(self, seconds: float, until=None) -> None:
        for _ in range(round(seconds / DT)):
            if self.w.log("carState", car_state(self.i)):
                self.accepted.append(self.i)
            self.i += 1
            self.t += DT
            self.w.update(self.t)
            if until is not None and until():
                return


class TestDiskFull:
    def test_stops_then_resumes_in_a_new_segment_and_the_route_reads_cleanly(self, monkeypatch):
        disk = FullDisk(monkeypatch)
        w = RouteWriter(routes_dir(), loggerd.logged_services(), segment_seconds=60, now=0.0)
        f = Feeder(w)
        f.run(1.2)
        assert w.writing and w.segment == 0

        disk.full = True
        f.run(2.0, until=lambda: not w.writing)
        assert not w.writing and w.error == "No space left on device" and w.write_errors == 1
        assert w.rlog is None and w.lost > 0          # the failed frame's messages are counted as lost
        stopped_at = f.t
        assert not w.log("carState", car_state(-1))   # refused while stopped: nothing piles up in memory

        # still full: the retry opens a segment, its first write fails, and its number is kept for the next try
        f.run(RETRY_PERIOD + 1.0)
        assert w.write_errors == 2 and not w.writing
        assert [s.number for s in Route(w.name).segments] == [0, 1]

        disk.full = False
        f.run(RETRY_PERIOD + 1.0, until=lambda: w.writing)
        assert w.writing and w.error == "" and w.segment == 1
        assert f.t - stopped_at >= 2 * RETRY_PERIOD   # retried every RETRY_PERIOD, not on every loop
        f.run(1.0)
        w.close()

        route = Route(w.name)
        assert [s.number for s in route.segments] == [0, 1]
        seg0, problems0 = counters(route.segments[0].path)
        seg1, problems1 = counters(route.segments[1].path)
        assert problems0 == [] and problems1 == []    # the part-written frame was cut off at the fault
        assert seg0 == list(range(len(seg0))) and len(seg0) >= 50   # readable up to the fault
        assert seg1 == list(range(seg1[0], seg1[0] + len(seg1))) and seg1[0] > seg0[-1] + 100  # and after it
        assert len(f.accepted) - w.lost == len(seg0) + len(seg1)
        assert w.bytes_written == sum(os.path.getsize(s.log_path(t)) for s in route.segments for t in ("rlog", "qlog"))

    def test_unwritable_at_start_retries_route_json_and_the_first_segment(self, monkeypatch):
        name, path = new_route_dir(routes_dir())

        def read_only(*args, **kwargs):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.path.join(path, "route.json"))

        monkeypatch.setattr(route_writer, "open", read_only, raising=False)  # route.json's writes go through it
        w = RouteWriter(routes_dir(), loggerd.logged_services(), segment_seconds=60, now=0.0, name=name)
        assert not w.writing and w.error == "Read-only file system" and w.segment == -1
        assert not w.log("carState", car_state(0))
        w.update(RETRY_PERIOD - 0.1)
        assert w.write_errors == 1                       # not retried before RETRY_PERIOD
        w.update(RETRY_PERIOD)
        assert w.write_errors == 2 and not w.writing
        monkeypatch.delattr(route_writer, "open")
        w.update(2 * RETRY_PERIOD)
        assert w.writing and w.segment == 0
        assert w.log("carState", car_state(1))
        w.close()
        assert Route(name).meta()["restarts"] == 0
        assert counters(name) == ([1], [])

    def test_close_while_stopped_does_not_raise(self, monkeypatch):
        disk = FullDisk(monkeypatch, errno.EIO)
        w = RouteWriter(routes_dir(), loggerd.logged_services(), segment_seconds=60, now=0.0)
        w.log("carState", car_state(0))
        disk.full = True
        w.close()                                        # the last flush fails: counted, not raised
        assert w.write_errors == 1 and w.lost == 1 and w.error == os.strerror(errno.EIO)


class TestNamedRoute:
    def test_a_restart_continues_after_the_last_segment_and_keeps_route_json(self):
        name, path = new_route_dir(routes_dir())      # reserved by the manager: an empty folder
        a = RouteWriter(routes_dir(), loggerd.logged_services(), segment_seconds=1.0, now=0.0, name=name)
        fa = Feeder(a)
        fa.run(2.5)
        a.close()
        started = Route(name).meta()["started"]
        assert a.segment == 2

        b = RouteWriter(routes_dir(), loggerd.logged_services(), segment_seconds=1.0, now=0.0, name=name)
        assert b.name == name and b.path == path and b.segment == 3
        b.log("carState", car_state(1000))
        b.close()
        meta = Route(name).meta()
        assert meta["restarts"] == 1 and meta["started"] == started and meta["name"] == name
        assert [s.number for s in Route(name).segments] == [0, 1, 2, 3]
        assert counters(name) == (fa.accepted + [1000], [])
        assert not os.path.exists(os.path.join(path, "route.json.tmp"))

    def test_a_missing_folder_is_created(self):
        w = RouteWriter(routes_dir(), loggerd.logged_services(), segment_seconds=60, now=0.0, name="my-run_1.a")
        w.close()
        assert Route("my-run_1.a").meta()["restarts"] == 0 and w.segment == 0

    def test_an_unreadable_route_json_is_left_alone(self):
        name, path = new_route_dir(routes_dir())
        with open(os.path.join(path, "route.json"), "w") as f:
            f.write("{not json")
        w = RouteWriter(routes_dir(), loggerd.logged_services(), segment_seconds=60, now=0.0, name=name)
        assert w.writing
        w.close()
        with open(os.path.join(path, "route.json")) as f:
            assert f.read() == "{not json"

    @pytest.mark.parametrize("bad", ["", ".", "..", "../escape", "a/b", "/abs", ".hidden", "sp ace", "x" * 101, "é"])
    def test_bad_names_are_refused(self, bad, monkeypatch, capsys):
        with pytest.raises(ValueError, match="bad route name"):
            check_route_name(bad)
        with pytest.raises(ValueError, match="bad route name"):
            RouteWriter(routes_dir(), loggerd.logged_services(), segment_seconds=60, now=0.0, name=bad)
        if bad:  # an empty variable means "no route given"
            monkeypatch.setenv(ROUTE_ENV, bad)
            with pytest.raises(SystemExit) as e:
                loggerd.parse_args([])
            assert e.value.code == 2 and ROUTE_ENV in capsys.readouterr().err

    def test_route_comes_from_the_environment(self, monkeypatch):
        monkeypatch.setenv(ROUTE_ENV, "2026-01-02--03-04-05")
        assert loggerd.parse_args([]).route == "2026-01-02--03-04-05"
        monkeypatch.setenv(ROUTE_ENV, "")
        assert loggerd.parse_args([]).route is None
        assert check_route_name("2026-01-02--03-04-05_2") == "2026-01-02--03-04-05_2"  # new_route_dir's names pass
