import json
import logging
import os
import subprocess
import sys
import time

import pytest

from cereal.services import SERVICES
from common import clock as common_clock
from common import realtime
from common.realtime import Ratekeeper, set_realtime_priority
from common.swaglog import cloudlog


class FakeClock:
    """Stands in for the `time` module inside common.realtime: sleeping advances it exactly."""

    def __init__(self):
        self.t = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def monotonic_ns(self) -> int:
        return int(self.t * 1e9)

    def sleep(self, s: float) -> None:
        assert s >= 0
        self.sleeps.append(s)
        self.t += s


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    c = FakeClock()
    monkeypatch.setattr(realtime, "time", c)
    monkeypatch.setattr(common_clock, "time", c)  # the process's clock is the machine's here (no driven clock)
    return c


@pytest.fixture
def log_records():
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append
    cloudlog.addHandler(handler)
    yield records
    cloudlog.removeHandler(handler)


def run_cycles(rk: Ratekeeper, clock: FakeClock, body_s: float, n: int, monitor: bool = False) -> list[bool]:
    out = []
    for _ in range(n):
        clock.t += body_s
        out.append(rk.monitor_time() if monitor else rk.keep_time())
    return out


def test_periods_match_service_rates():
    assert realtime.DT_CTRL == pytest.approx(1 / SERVICES["carState"].frequency)
    assert realtime.DT_MDL == pytest.approx(1 / SERVICES["modelV2"].frequency)
    assert realtime.DT_CAL == pytest.approx(1 / SERVICES["liveCalibration"].frequency)
    assert realtime.DT_HW == pytest.approx(1 / SERVICES["deviceState"].frequency)


class TestRatekeeperSchedule:
    def test_first_cycle_starts_the_schedule(self, clock):
        rk = Ratekeeper(100)
        clock.t += 5.0  # time between construction and the loop does not count as lag
        assert rk.keep_time() is False
        assert clock.sleeps == [] and rk.frame == 1 and rk.missed == 0 and rk.remaining == 0
        assert run_cycles(rk, clock, 0.001, 1) == [False] and clock.sleeps == [pytest.approx(0.009)]

    def test_steady_loop_sleeps_the_rest_of_each_period(self, clock):
        rk = Ratekeeper(100)
        rk.keep_time()
        start = clock.t
        assert run_cycles(rk, clock, 0.004, 200) == [False] * 200
        assert clock.sleeps == [pytest.approx(0.006)] * 200
        assert clock.t == pytest.approx(start + 200 * 0.01)
        assert rk.frame == 201 and rk.missed == 0 and not rk.lagging
        assert rk.remaining == pytest.approx(0.006) and rk.avg_dt == pytest.approx(0.01)

    def test_small_overrun_is_caught_up_keeping_the_phase(self, clock):
        rk = Ratekeeper(100)
        rk.keep_time()
        start = clock.t
        lags = [run_cycles(rk, clock, body, 1)[0] for body in (0.002, 0.015, 0.002, 0.002)]
        assert lags == [False, True, False, False]
        assert rk.missed == 1 and rk.remaining == pytest.approx(0.008)
        assert clock.sleeps[-2] == pytest.approx(0.003)  # the cycle after the overrun gets the rest of its period
        assert clock.t == pytest.approx(start + 4 * 0.01)

    def test_long_stall_restarts_schedule_without_a_burst(self, clock):
        rk = Ratekeeper(100)
        rk.keep_time()
        assert run_cycles(rk, clock, 0.25, 1) == [True]  # a 250 ms stall: 24 deadlines gone
        assert rk.remaining == pytest.approx(-0.24)
        assert run_cycles(rk, clock, 0.001, 5) == [False] * 5  # no back-to-back cycles to catch up
        assert clock.sleeps[-5:] == [pytest.approx(0.009)] * 5
        assert rk.missed == 1

    def test_every_overrunning_cycle_is_counted(self, clock):
        rk = Ratekeeper(100)
        rk.keep_time()
        assert run_cycles(rk, clock, 0.015, 50) == [True] * 50
        assert rk.missed == 50 and rk.frame == 51

    def test_lagging_follows_the_recent_average(self, clock):
        rk = Ratekeeper(100)
        rk.keep_time()
        run_cycles(rk, clock, 0.002, 100)
        assert not rk.lagging
        run_cycles(rk, clock, 0.02, 100)  # running at 50 Hz
        assert rk.lagging and rk.avg_dt == pytest.approx(0.02, rel=0.01)
        run_cycles(rk, clock, 0.002, 100)  # about a second of good cycles clears it
        assert not rk.lagging

    def test_monitor_time_measures_without_sleeping(self, clock):
        rk = Ratekeeper(20)
        rk.monitor_time()
        assert run_cycles(rk, clock, 0.05, 10, monitor=True) == [False] * 10
        assert run_cycles(rk, clock, 0.08, 1, monitor=True) == [True]
        assert clock.sleeps == [] and rk.frame == 12 and rk.missed == 1

    def test_lag_logged_at_most_once_a_second(self, clock, log_records):
        rk = Ratekeeper(100, print_delay_threshold=0.005)
        rk.keep_time()
        for _ in range(100):
            run_cycles(rk, clock, 0.014, 1)  # 4 ms late: below the threshold, caught up next cycle
            run_cycles(rk, clock, 0.001, 1)
        assert log_records == [] and rk.missed == 100
        run_cycles(rk, clock, 0.02, 150)  # 3 s of 10 ms lags
        assert 2 <= len(log_records) <= 4 and all(r.levelno == logging.WARNING for r in log_records)
        assert log_records[0].lag_ms == pytest.approx(10.0)

    def test_no_threshold_no_log(self, clock, log_records):
        rk = Ratekeeper(100)
        rk.keep_time()
        run_cycles(rk, clock, 0.05, 100)
        assert log_records == [] and rk.missed == 100

    @pytest.mark.parametrize("rate", [0, -1, float("nan")])
    def test_bad_rate(self, rate):
        with pytest.raises(ValueError):
            Ratekeeper(rate)


class TestRatekeeperRealClock:
    def test_overrunning_body_counts_misses(self):
        rk = Ratekeeper(100)
        rk.keep_time()
        lagged = []
        for _ in range(5):
            time.sleep(0.03)  # three periods: always late, however loaded the machine
            lagged.append(rk.keep_time())
        assert lagged == [True] * 5 and rk.missed == 5 and rk.frame == 6 and rk.remaining < 0

    def test_keep_time_paces_the_loop(self):
        rk = Ratekeeper(100)
        start = time.monotonic()
        for _ in range(10):
            rk.keep_time()
        assert time.monotonic() - start >= 0.089  # 9 periods; sleeps never end early; no upper bound asserted
        assert rk.frame == 10


class TestPriority:
    def test_not_permitted_falls_back_with_one_log_line(self, monkeypatch, log_records):
        def refuse(*args):
            raise PermissionError(1, "Operation not permitted")
        monkeypatch.setattr(os, "sched_setscheduler", refuse)
        before = os.sched_getscheduler(0)
        assert set_realtime_priority(realtime.PRIO_CTRL_LOW) is False
        assert os.sched_getscheduler(0) == before
        assert [r.getMessage() for r in log_records] == ["realtime priority not applied"]

    def test_missing_on_this_os(self, monkeypatch, log_records):
        monkeypatch.delattr(os, "sched_setscheduler")
        assert set_realtime_priority(1) is False
        assert len(log_records) == 1

    def test_applies_where_permitted(self):
        # in a child process: SCHED_FIFO on the test runner itself could starve the shared machine
        code = ("import json, os; from common.realtime import set_realtime_priority; "
                "ok = set_realtime_priority(2); "
                "print(json.dumps([ok, os.sched_getscheduler(0) == os.SCHED_FIFO, "
                "os.sched_getparam(0).sched_priority]))")
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
        ok, fifo, prio = json.loads(out)
        if not ok:
            probe = subprocess.run([sys.executable, "-c", "import os; os.sched_setscheduler(0, os.SCHED_FIFO, "
                                    "os.sched_param(2))"], capture_output=True)
            assert probe.returncode != 0, "permitted here, yet set_realtime_priority fell back"
            pytest.skip("SCHED_FIFO not permitted on this machine")
        assert (fifo, prio) == (True, 2)


def test_on_the_driven_clock_a_loop_is_late_only_in_the_worlds_time(monkeypatch):
    """Under the lockstep simulator a cycle is judged on the world's clock: wall time spent waiting for a world that
    stands still is no lag, and a world stepping faster than real time is no burst."""
    monkeypatch.setenv(common_clock.CLOCK_ENV, common_clock.DRIVEN)
    world = common_clock.DrivenClock(5_000_000_000)
    rk = Ratekeeper(100.0)
    for k in range(50):
        world.set_ns(5_000_000_000 + k * 10_000_000)
        time.sleep(0.002 if k % 2 else 0.03)  # the machine: now slower, now faster than the world
        assert rk.monitor_time() is False
    assert rk.missed == 0 and rk.avg_dt == pytest.approx(0.01)
    world.set_ns(world.ns + 35_000_000)  # the world moved 3.5 cycles: that cycle overran
    assert rk.monitor_time() is True and rk.missed == 1
