"""The `sim` CAN backend: the simulator's car on one end of two sockets, canbridged's adapter on the other."""

import time

import pytest
import zmq
from opendbc.car.can_definitions import CanData

from cereal.messaging.endpoints import ipc_endpoint
from common.clock import CLOCK_ENV, DRIVEN
from hardware.can_backends import BackendError, classify, open_backend
from hardware.sim_backend import CAR_ENDPOINT, SimCarLink, pack_frames, unpack_frames

FRAMES = [CanData(0x1D2, bytes(range(8)), 0), CanData(0x412, b"\x01\x02", 2), CanData(0x18DAF110, b"", 1)]


def recv_until(backend, n: int, timeout: float = 5.0) -> list:
    out, deadline = [], time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out += backend.recv()
        time.sleep(0.005)
    return out


class TestWire:
    def test_roundtrip(self):
        got = unpack_frames(pack_frames(FRAMES))
        assert got == FRAMES and all(type(f) is CanData for f in got)
        assert unpack_frames(b"") == []

    @pytest.mark.parametrize("msg", [b"\x01", pack_frames(FRAMES)[:-1], pack_frames([(1, b"\0" * 8, 0)])[:10]])
    def test_truncated_messages_are_refused(self, msg):
        with pytest.raises(ValueError):
            unpack_frames(msg)


class TestBackend:
    def setup_method(self):
        self.backend = open_backend("sim")
        self.car = SimCarLink()

    def teardown_method(self):
        self.backend.close()
        self.car.close()

    def test_car_frames_reach_the_adapter_as_frames(self):
        deadline = time.monotonic() + 5
        while not self.car.send(FRAMES[:2]):  # the connection comes up asynchronously
            assert time.monotonic() < deadline
            time.sleep(0.01)
        self.car.send(FRAMES[2:])
        got = recv_until(self.backend, 3)
        assert [(r.address, r.dat, r.src) for r in got] == FRAMES
        assert got[2].is_extended and not got[0].is_extended
        assert all(classify(r)[0] is not None for r in got)

    def test_adapter_frames_reach_the_car(self):
        deadline = time.monotonic() + 5
        while True:
            try:
                self.backend.send(CanData(0x2E4, b"\x01\x02\x03\x04\x05", 0))
                break
            except BackendError:
                assert time.monotonic() < deadline
                time.sleep(0.01)
        self.backend.send(CanData(0x343, bytes(8), 0))
        got = []
        while len(got) < 2 and time.monotonic() < deadline:
            got += self.car.recv(100)
        assert got == [(0x2E4, b"\x01\x02\x03\x04\x05", 0), (0x343, bytes(8), 0)]

    def test_garbage_on_the_link_is_one_error_frame_each(self):
        junk = zmq.Context.instance().socket(zmq.PUSH)
        junk.setsockopt(zmq.LINGER, 0)
        junk.connect(ipc_endpoint(CAR_ENDPOINT))
        try:
            junk.send(b"\x07\x00")
            junk.send(pack_frames(FRAMES[:1]))
            got = recv_until(self.backend, 2)
        finally:
            junk.close(0)
        assert [classify(r)[1] for r in got] == ["error_frame", None]
        assert self.backend.malformed == 1


def test_sending_with_no_car_on_the_bus_fails():
    backend = open_backend("sim")
    try:
        with pytest.raises(BackendError, match="no simulated car"):
            backend.send(CanData(0x2E4, bytes(5), 0))
    finally:
        backend.close()


def test_options_are_refused():
    with pytest.raises(BackendError, match="no options"):
        open_backend("sim?rate=2")


def test_car_frames_are_lost_while_no_adapter_listens():
    car = SimCarLink()
    try:
        assert not car.send(FRAMES)
        assert car.dropped_steps == 1
        assert car.recv(20) == []
    finally:
        car.close()


def connect(car: SimCarLink, backend) -> None:
    """Waits for the link to come up in both directions (connections are asynchronous)."""
    deadline = time.monotonic() + 5
    while not car.send([]):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    while True:
        try:
            backend.send(CanData(0x7E0, b"\x02\x3e\x00", 0))
            break
        except BackendError:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    assert car.take(2000) == (0, [(0x7E0, b"\x02\x3e\x00", 0)])
    recv_until(backend, 1, 0.2)  # the empty step


def test_a_sendcan_ends_after_its_frames_also_when_none_went_out():
    # the lockstep bridge's answer to a step: the end of a sendcan, with its stamp, after the frames it sent
    backend, car = open_backend("sim"), SimCarLink()
    try:
        connect(car, backend)
        backend.send(CanData(0x2E4, b"\x01", 0))
        backend.end_sendcan(1_000_000_123)
        backend.end_sendcan(1_000_000_124)  # every frame refused by the safety layer: still an end
        assert [car.take(2000) for _ in range(3)] == [(0, [(0x2E4, b"\x01", 0)]), (1_000_000_123, []),
                                                     (1_000_000_124, [])]
        assert car.take(50) is None
    finally:
        backend.close()
        car.close()


def test_on_the_driven_clock_the_car_sets_the_pace_one_step_per_recv(monkeypatch):
    wall = open_backend("sim")
    wall.close()
    assert wall.step_socket is None  # on a car's (wall) clock canbridged keeps its own tick
    monkeypatch.setenv(CLOCK_ENV, DRIVEN)
    backend, car = open_backend("sim"), SimCarLink()
    try:
        assert backend.step_socket is not None
        connect(car, backend)
        car.send(FRAMES[:2])
        car.send(FRAMES[2:])
        assert backend.step_socket.poll(2000)
        assert [(r.address, r.dat, r.src) for r in backend.recv()] == FRAMES[:2]
        assert backend.step_socket.poll(2000)
        assert [(r.address, r.dat, r.src) for r in backend.recv()] == FRAMES[2:]
        assert backend.recv() == []
    finally:
        backend.close()
        car.close()
