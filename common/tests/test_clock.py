"""common.clock: the machine's clock on a car, the lockstep world's when the environment says so."""

import multiprocessing
import os
import threading
import time

import pytest
import zmq

from cereal import messaging
from common import clock


@pytest.fixture
def driven(monkeypatch):
    monkeypatch.setenv(clock.CLOCK_ENV, clock.DRIVEN)


def test_the_machines_clock_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv(clock.CLOCK_ENV, raising=False)
    assert not clock.driven()
    a = time.monotonic_ns()
    assert a <= clock.monotonic_ns() <= time.monotonic_ns()
    monkeypatch.setenv(clock.CLOCK_ENV, "sundial")
    with pytest.raises(ValueError, match="ROADPILOT_CLOCK='sundial'"):
        clock.monotonic()


def test_the_worlds_clock_is_what_the_simulator_wrote_and_the_machines_before(driven):
    before = clock.monotonic_ns()  # no clock file yet: the machine's stands in
    assert abs(before - time.monotonic_ns()) < 1e9
    world = clock.DrivenClock(time.monotonic_ns())
    start = world.ns
    assert start >= before
    time.sleep(0.05)  # the machine's time moves, the world's does not
    assert clock.monotonic_ns() == start
    world.set_ns(start + 10_000_000)
    assert clock.monotonic_ns() == start + 10_000_000 and clock.monotonic() == pytest.approx((start + 1e7) / 1e9)
    msg = messaging.new_message("carState")  # every message is stamped with it
    assert msg.logMonoTime == start + 10_000_000
    with pytest.raises(ValueError, match="forwards only"):
        world.set_ns(start)


def test_a_new_drive_continues_the_clock_where_a_faster_one_left_it(driven):
    first = clock.DrivenClock(time.monotonic_ns())
    first.set_ns(first.ns + 3600 * 10**9)  # an hour of world in a few seconds of machine
    reader_saw = clock.monotonic_ns()
    second = clock.DrivenClock(time.monotonic_ns())  # the next drive on this prefix
    assert second.ns == reader_saw  # never backwards
    second.set_ns(second.ns + 10_000_000)
    assert clock.monotonic_ns() == reader_saw + 10_000_000  # a reader that mapped the file follows: written in place


def _step_the_world(stop) -> None:
    world = clock.DrivenClock(0)  # goes on from where the file is
    while not stop.is_set():
        world.set_ns(world.ns + 10_000_000)


def test_a_daemon_never_reads_a_time_the_simulator_is_still_writing(driven):
    """The simulator steps the clock in its process while a daemon reads it in its own: every read is a time the
    simulator wrote, never 0 or one torn between two steps (struct.pack_into zeroed the word, then wrote it byte by
    byte: a deviceState was once stamped 0 mid-drive). Reads until it has seen the clock move 2,000 times."""
    clock.DrivenClock(time.monotonic_ns()).close()  # the file exists before the other process writes it
    stop = multiprocessing.get_context("fork").Event()
    writer = multiprocessing.get_context("fork").Process(target=_step_the_world, args=(stop,))
    writer.start()
    try:
        first = last = clock.monotonic_ns()
        moved = bad = reads = 0
        while moved < 2000 and reads < 20_000_000:
            t = clock.monotonic_ns()
            reads += 1
            if t != last:
                moved += 1
                bad += t < last or (t - first) % 10_000_000 != 0  # behind, or not on a 10 ms step of the world
                last = t
    finally:
        stop.set()
        writer.join(10)
    assert moved == 2000, f"the world moved {moved} times in {reads} reads"
    assert bad == 0, f"{bad} of {moved} readings were not a time the simulator wrote"


def test_a_new_clock_file_holds_its_time_from_the_first_byte(driven):
    """A daemon that maps the file the moment it appears reads the simulator's start, not 0."""
    from common.mapped_words import WORD, as_words, map_words
    path = os.path.join(clock.run_dir(create=True), "words-test")
    m = map_words(path, 2, create=True, initial=(123456789,))
    with open(path, "rb") as f:
        assert f.read() == (123456789).to_bytes(WORD, "little") + bytes(WORD)
    again = as_words(map_words(path, 2, create=True, initial=(5,)))  # an existing file is kept, never replaced
    assert list(again) == [123456789, 0]
    again.release()
    m.close()
    os.unlink(path)


def test_a_wait_on_a_world_that_stands_still_ends_with_an_input_or_the_cap(driven, monkeypatch):
    world = clock.DrivenClock(time.monotonic_ns())
    pub, sub = messaging.pub_sock("carState"), messaging.sub_sock("carState")
    poller = zmq.Poller()
    poller.register(sub.sock, zmq.POLLIN)
    time.sleep(0.2)  # connected
    # 20 ms of the world's time: the world does not move, so 150 ms of the machine's pass without it ending
    monkeypatch.setattr(clock, "DRIVEN_WAIT_CAP_S", 0.15)
    t0 = time.monotonic()
    assert not clock.wait(poller.poll, 0.02)
    assert time.monotonic() - t0 >= 0.15
    # the world moves past the deadline while we wait: the wait ends then, long before the cap
    monkeypatch.setattr(clock, "DRIVEN_WAIT_CAP_S", 5.0)
    mover = threading.Timer(0.3, lambda: world.set_ns(world.ns + 30_000_000))
    t0 = time.monotonic()
    mover.start()
    assert not clock.wait(poller.poll, 0.02)
    assert 0.3 <= time.monotonic() - t0 < 1.5
    # an input ends it at once
    pub.send(messaging.new_message("carState").to_bytes())
    t0 = time.monotonic()
    assert clock.wait(poller.poll, 0.02)
    assert time.monotonic() - t0 < 1.0
    pub.close()
    sub.close()


def test_a_sleep_on_the_worlds_clock_lasts_until_the_world_has_moved(driven):
    world = clock.DrivenClock(time.monotonic_ns())

    def drive():
        for _ in range(10):
            time.sleep(0.01)
            world.set_ns(world.ns + 10_000_000)

    t = threading.Thread(target=drive)
    start = world.ns
    t.start()
    clock.sleep(0.05)  # five of the world's 10 ms steps
    assert clock.monotonic_ns() - start >= 50_000_000
    t.join()


def test_the_stepped_clock_is_the_time_process_replay_set(monkeypatch, tmp_path):
    """Process replay's clock: the control block's CLOCK word, which its driver sets."""
    from cereal.messaging import stepped
    monkeypatch.setenv(clock.CLOCK_ENV, clock.STEPPED)
    monkeypatch.delenv(stepped.ENV, raising=False)
    with pytest.raises(ValueError, match="ROADPILOT_LOCKSTEP"):
        clock.monotonic_ns()
    path = str(tmp_path / "ls-test")
    cb = stepped.control_block(path, create=True)
    monkeypatch.setenv(stepped.ENV, path)
    cb[stepped.CLOCK] = 42_000_000_000
    assert clock.stepped() and not clock.driven()
    assert clock.monotonic_ns() == 42_000_000_000 and clock.monotonic() == 42.0
    cb[stepped.CLOCK] += 10_000_000
    assert clock.monotonic_ns() == 42_010_000_000
