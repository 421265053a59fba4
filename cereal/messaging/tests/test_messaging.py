import contextlib
import os
import subprocess
import sys
import threading
import time

import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from cereal import log, messaging
from cereal.messaging.endpoints import ipc_endpoint
from cereal.services import SERVICES


def start(*args: str, env: dict | None = None) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-m", "cereal.messaging.tests.procs", *args],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert p.stdout.readline().strip() == "ready"
    return p


def stop(p: subprocess.Popen) -> None:
    p.kill()
    p.wait(5)


def command(p: subprocess.Popen, line: str) -> None:
    p.stdin.write(line + "\n")
    p.stdin.flush()


def wait_until(sm: messaging.SubMaster, cond, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sm.update(20)
        if cond():
            return True
    return False


class TestSchema:
    def test_services_table_matches_event_union(self):
        union = set(log.Event.schema.union_fields)
        assert union == set(SERVICES), "every service needs an Event union field and vice versa"

    @pytest.mark.parametrize("first", ["cereal", "opendbc.car.structs"])
    def test_opendbc_shares_our_car_schema(self, first):
        # pycapnp aborts the process on a double schema load, so each import order runs in its own process
        code = (f"import {first}; from cereal import car; from opendbc.car import structs; "
                "assert structs.CarState is car.CarState; print('ok')")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr

    def test_new_message_rejects_unknown_service(self):
        with pytest.raises(KeyError, match="unknown service"):
            messaging.new_message("notAService")

    def test_round_trip_sets_time_and_validity(self):
        msg = messaging.new_message("carState", valid=False)
        msg.carState.vEgo = 12.5
        back = messaging.log_from_bytes(msg.to_bytes())
        assert back.which() == "carState" and back.carState.vEgo == 12.5
        assert not back.valid and abs(back.logMonoTime - time.monotonic_ns()) < 5e9


class TestMalformed:
    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=256))
    def test_random_bytes_raise_only_malformed(self, dat):
        try:
            messaging.log_from_bytes(dat)
        except messaging.MalformedMessage:
            pass

    def test_truncated_and_padded_messages_are_rejected(self):
        good = messaging.new_message("deviceState").to_bytes()
        for bad in (good[:-8], good + b"\0" * 8, good[:8], b""):
            with pytest.raises(messaging.MalformedMessage):
                messaging.log_from_bytes(bad)

    def test_garbage_on_socket_is_counted_not_raised(self):
        sm = messaging.SubMaster(["carState"])
        raw = zmq.Context.instance().socket(zmq.PUB)
        raw.bind(ipc_endpoint("carState", create=True))
        msg = messaging.new_message("carState")
        msg.carState.vEgo = 7.0
        good = msg.to_bytes()
        other = messaging.new_message("deviceState").to_bytes()
        garbage = [b"", b"x" * 7, b"\xff" * 64, good[:-8], other]
        try:
            assert wait_until(sm, lambda: (raw.send(good), sm.updated["carState"])[1])
            for g in garbage:
                raw.send(g)
            raw.send(good)
            assert wait_until(sm, lambda: sm.malformed["carState"] >= len(garbage))
            assert sm["carState"].vEgo == 7.0 and sm.valid["carState"]
        finally:
            raw.close(0)
            sm.close()


class TestProcesses:
    def test_publisher_and_subscriber_processes_exchange_messages(self):
        pub = start("publisher", "carState", "100")
        sm = messaging.SubMaster(["carState"])
        try:
            assert wait_until(sm, lambda: sm.updated["carState"])
            first = sm["carState"].vEgo
            assert wait_until(sm, lambda: sm["carState"].vEgo >= first + 50)
            assert sm.alive["carState"] and sm.valid["carState"]
        finally:
            stop(pub)
            sm.close()

    def test_alive_and_freq_follow_the_publisher(self):
        pub = start("publisher", "carState", "100")
        sm = messaging.SubMaster(["carState"])
        try:
            assert wait_until(sm, lambda: sm.freq_ok["carState"]), "100 Hz publisher should be on frequency"
            command(pub, "rate 40")
            assert wait_until(sm, lambda: not sm.freq_ok["carState"]), "40 Hz is off a 100 Hz contract"
            assert sm.alive["carState"], "a slow publisher is still alive"
            assert not sm.all_checks()
            command(pub, "rate 100")
            assert wait_until(sm, lambda: sm.freq_ok["carState"]), "back on frequency after recovering"
            command(pub, "stop")
            pub.wait(5)
            assert wait_until(sm, lambda: not sm.alive["carState"]), "a stopped publisher is not alive"
            assert not sm.freq_ok["carState"]
        finally:
            stop(pub)
            sm.close()

    def test_invalid_input_propagates_through_a_daemon(self):
        pub = start("publisher", "carState", "100")
        rel = start("relay", "carState", "controlsState")
        sm = messaging.SubMaster(["controlsState"])
        try:
            assert wait_until(sm, lambda: sm.updated["controlsState"] and sm.valid["controlsState"])
            command(pub, "valid 0")
            assert wait_until(sm, lambda: sm.updated["controlsState"] and not sm.valid["controlsState"])
            command(pub, "valid 1")
            assert wait_until(sm, lambda: sm.updated["controlsState"] and sm.valid["controlsState"])
        finally:
            stop(pub)
            stop(rel)
            sm.close()

    def test_two_prefixes_do_not_cross_talk(self, monkeypatch):
        env_b = dict(os.environ, ROADPILOT_PREFIX=os.environ["ROADPILOT_PREFIX"] + "b")
        pub_b = start("publisher", "deviceState", "50", env=env_b)
        pub_a = start("publisher", "carState", "50")
        sm = messaging.SubMaster(["carState", "deviceState"])
        try:
            assert wait_until(sm, lambda: sm.updated["carState"])
            time.sleep(0.3)
            sm.update(0)
            assert not sm.seen["deviceState"], "a stack under another prefix leaked into ours"
        finally:
            stop(pub_a)
            stop(pub_b)
            sm.close()


class TestSockets:
    def test_conflate_keeps_only_the_newest(self):
        pm = messaging.PubMaster(["carState"])
        sock = messaging.sub_sock("carState", conflate=True)
        try:
            probe = messaging.new_message("carState").to_bytes()
            assert any(pm.send("carState", probe) or sock.receive(50) for _ in range(100))
            for i in range(20):
                m = messaging.new_message("carState")
                m.carState.vEgo = float(i)
                pm.send("carState", m)
            time.sleep(0.1)
            assert messaging.recv_one(sock).carState.vEgo == 19.0
            assert sock.receive(0) is None
        finally:
            pm.close()
            sock.close()

    def test_a_watched_publisher_counts_its_subscribers_and_its_first_message_arrives(self):
        pm = messaging.PubMaster(["can", "carState"], watch=["can"])
        socks = []
        try:
            assert pm.sock["can"].subscribers() == 0
            with pytest.raises(ValueError, match="watched"):
                pm.sock["carState"].subscribers()
            for n in (1, 2):
                socks.append(messaging.sub_sock("can"))
                while pm.sock["can"].subscribers() < n:  # the subscription travels asynchronously
                    time.sleep(0.001)
            first = messaging.new_message("can", 0)
            pm.send("can", first)  # once counted, no resending is needed (unlike test_conflate's probe loop)
            assert all(messaging.recv_one(s, 1000).logMonoTime == first.logMonoTime for s in socks)
            socks.pop().close()
            while pm.sock["can"].subscribers() != 1:
                time.sleep(0.001)
        finally:
            pm.close()
            for s in socks:
                s.close()

    def test_tcp_reader(self):
        pm = messaging.PubMaster(["deviceState"], tcp_bind="127.0.0.1")
        sock = messaging.sub_sock("deviceState", addr="127.0.0.1")
        try:
            m = messaging.new_message("deviceState")
            m.deviceState.uptime = 3.0
            dat, got = m.to_bytes(), None
            for _ in range(100):
                pm.send("deviceState", dat)
                got = messaging.recv_one(sock, timeout_ms=50)
                if got is not None:
                    break
            assert got is not None and got.deviceState.uptime == 3.0
        finally:
            pm.close()
            sock.close()

    def test_receive_never_blocks_forever(self):
        sock = messaging.sub_sock("carState")
        t = time.monotonic()
        assert messaging.recv_one(sock, timeout_ms=50) is None
        assert time.monotonic() - t < 5
        sm = messaging.SubMaster(["carState"], poll="carState")
        sm.update(50)
        assert not sm.updated["carState"] and not sm.alive["carState"]
        sock.close()
        sm.close()

    def test_bad_prefix_is_a_clear_error(self, monkeypatch):
        monkeypatch.setenv("ROADPILOT_PREFIX", "../etc")
        with pytest.raises(ValueError, match="ROADPILOT_PREFIX"):
            messaging.pub_sock("carState")


class TestDrivenClock:
    """SubMaster on the lockstep simulator's clock (common.clock): what a daemon takes at a step never depends on how
    fast the machine ran its peers or delivered their messages."""

    @pytest.fixture
    def world(self, monkeypatch):
        from common.clock import CLOCK_ENV, DRIVEN, DrivenClock
        monkeypatch.setenv(CLOCK_ENV, DRIVEN)
        c = DrivenClock(time.monotonic_ns())
        yield c
        c.close()

    @staticmethod
    def stamped(service: str, ns: int):
        m = messaging.new_message(service)
        m.logMonoTime = ns
        return m

    @staticmethod
    @contextlib.contextmanager
    def connected(peer: str, watch: tuple[str, ...]):
        """carState (our poll service) and a peer's service: their publisher, our SubMaster, and the publisher's
        `watch`ed sockets subscribed to before the test sends anything."""
        pm = messaging.PubMaster(["carState", peer], watch=watch)
        sm = messaging.SubMaster(["carState", peer], poll="carState")
        try:
            while any(pm.sock[s].subscribers() < 1 for s in watch):
                time.sleep(0.001)
            yield pm, sm
        finally:
            pm.close()
            sm.close()

    def test_a_peers_answer_to_the_present_step_is_taken_once_the_world_steps_on(self, world):
        with self.connected("selfdriveState", ("carState", "selfdriveState")) as (pm, sm):
            t = world.ns
            pm.send("selfdriveState", self.stamped("selfdriveState", t))  # a peer already answered this step
            pm.send("carState", self.stamped("carState", t))              # our own input: taken at once
            assert wait_until(sm, lambda: sm.updated["carState"])
            assert not sm.seen["selfdriveState"]
            world.set_ns(t + 10_000_000)
            pm.send("carState", self.stamped("carState", world.ns))
            assert wait_until(sm, lambda: sm.updated["carState"])
            assert sm.seen["selfdriveState"] and sm.logMonoTime["selfdriveState"] == t

    def test_a_message_sent_but_never_delivered_is_waited_for_once(self, world):
        # the table of stamps says an earlier step's message exists; it never comes (ZMQ dropped it):
        # one wait of CATCH_UP_MS, not one per update
        with self.connected("selfdriveState", ("carState",)) as (pm, sm):
            world.set_ns(world.ns + 10_000_000)
            pm.published.put("selfdriveState", world.ns)
            waits = []
            for _ in range(3):
                world.set_ns(world.ns + 10_000_000)
                pm.send("carState", self.stamped("carState", world.ns))
                t0 = time.monotonic()
                assert wait_until(sm, lambda: sm.updated["carState"])
                waits.append(time.monotonic() - t0)
            assert waits[0] >= messaging.CATCH_UP_MS / 1000 * 0.9 and max(waits[1:]) < messaging.CATCH_UP_MS / 1000

    def test_a_message_stamped_before_the_reader_subscribed_is_not_waited_for(self, world):
        # a daemon (re)started mid-drive: what its peers sent before it subscribed never reaches it
        messaging.PubMaster([]).published.put("selfdriveState", world.ns)  # the run's table of stamps, before us
        with self.connected("selfdriveState", ("carState",)) as (pm, sm):
            world.set_ns(world.ns + 10_000_000)
            pm.send("carState", self.stamped("carState", world.ns))
            t0 = time.monotonic()
            assert wait_until(sm, lambda: sm.updated["carState"])
            assert time.monotonic() - t0 < messaging.CATCH_UP_MS / 1000 and not sm.seen["selfdriveState"]

    def test_the_newest_earlier_message_is_waited_for_even_when_an_older_one_comes_first(self, world):
        # a loaded machine delivers a peer's answer to the step before last first and its answer to the last step
        # later: the reader must take the last step's (it took whatever came first: what it read depended on load)
        service = "liveTorqueParameters"
        with self.connected(service, ("carState", service)) as (pm, sm):
            older, last = world.ns + 10_000_000, world.ns + 20_000_000
            world.set_ns(last + 10_000_000)
            pm.published.put(service, last)  # both sent, both still on their way
            on_the_way = [threading.Timer(delay, pm.send, (service, self.stamped(service, t)))
                          for delay, t in ((0.1, older), (0.4, last))]
            for timer in on_the_way:
                timer.start()
            pm.send("carState", self.stamped("carState", world.ns))
            assert wait_until(sm, lambda: sm.updated["carState"])
            for timer in on_the_way:
                timer.join()
            assert sm.logMonoTime[service] == last


def test_can_frames_go_through_a_message_unchanged_and_come_back_as_candata():
    from opendbc.car.can_definitions import CanData

    from cereal.can_frames import can_list_message, frames_of
    frames = [CanData(0x2E4, b"\x01\x02", 0), (0x343, bytearray(b"\x00" * 8), 2), CanData(0x18DAF100, b"", 129)]
    for service in ("can", "sendcan"):
        ev = messaging.log_from_bytes(can_list_message(service, frames, valid=False).to_bytes())
        got = frames_of(getattr(ev, service))
        assert got == [(a, bytes(d), s) for a, d, s in frames] and all(type(f) is CanData for f in got)
        assert not ev.valid
