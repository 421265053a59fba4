"""Lockstep with a real process: the daemon's clock is the recording's, its timeouts fire at recorded times
(not when the machine is slow), every input is answered before the next is sent, and a daemon that dies
is reported, not waited for."""

import pytest

from cereal import messaging
from cereal.messaging.stepped import LockstepError
from tools.replay.lockstep_driver import LockstepDaemon

T0 = 50_000_000_000
MS = 1_000_000


def can(n_frames: int, t_ns: int, address: int = 0x100) -> bytes:
    msg = messaging.new_message("can", n_frames)
    for c in msg.can:
        c.address, c.dat, c.src = address, b"\x01", 0
    msg.logMonoTime = t_ns
    return msg.to_bytes()


def run(feeds: list[tuple[int, int]], *args: str, tmp_path, tail_ms: int = 30) -> list[tuple[float, float]]:
    """(ms after T0, vEgo) of every carState the daemon published."""
    out = []
    with LockstepDaemon("tools.replay.tests.tick_daemon", args, t_start_ns=T0 - MS,
                        log_path=str(tmp_path / "tick.log")) as d:
        d.start()
        for t_ms, n in feeds:
            out += d.feed("can", can(n, T0 + t_ms * MS), T0 + t_ms * MS)
        out += d.advance(T0 + (feeds[-1][0] + tail_ms) * MS)
    evs = [messaging.log_from_bytes(dat) for s, dat in out if s == "carState"]
    return [((e.logMonoTime - T0) / MS, e.carState.vEgo) for e in evs]


class TestLockstep:
    def test_answers_each_input_and_times_out_at_recorded_times(self, tmp_path):
        got = run([(0, 1), (10, 2), (100, 3)], tmp_path=tmp_path)
        # after the CAN at 10 ms it waits 20 ms at a time: timeouts at 30, 50, 70, 90 ms, then the CAN at 100;
        # after the last input the driver moves the clock 30 ms on: one more timeout at 120
        assert got == [(0, 1), (10, 2), (30, -1), (50, -1), (70, -1), (90, -1), (100, 3), (120, -1)]

    def test_same_inputs_same_outputs(self, tmp_path):
        feeds = [(t, t % 3 + 1) for t in range(0, 300, 7)]
        assert run(feeds, tmp_path=tmp_path) == run(feeds, tmp_path=tmp_path)

    def test_sleep_is_virtual_and_inputs_wait_for_it(self, tmp_path):
        # a 50 ms sleep per answer: the CAN at 10 ms is read when the sleep ends (at 50 ms), as it would be live
        got = run([(0, 1), (10, 2)], "--sleep", tmp_path=tmp_path, tail_ms=110)
        assert got == [(50, 1), (100, 2)]  # then it waits for CAN until 120 ms: the clock stops there

    def test_a_dying_daemon_is_reported(self, tmp_path):
        with pytest.raises(LockstepError, match="exited with code 3"):
            with LockstepDaemon("tools.replay.tests.tick_daemon", t_start_ns=T0) as d:
                d.start()
                d.feed("can", can(1, T0 + MS, address=0x666), T0 + MS)
                d.feed("can", can(1, T0 + 2 * MS), T0 + 2 * MS)

    def test_a_missing_module_is_reported(self):
        with pytest.raises(LockstepError, match="exited with code"):
            with LockstepDaemon("tools.replay.tests.no_such_daemon", t_start_ns=T0) as d:
                d.start()
