import json
import os
import select
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cereal.visionipc import (
    NOTIFY,
    NOTIFY_MAGIC,
    NOTIFY_VERSION,
    FrameOverwritten,
    VisionIpcClient,
    VisionIpcServer,
    VisionStreamType,
    nv12_size,
    shm_name,
)
from cereal.visionipc.tests.procs import frame_ok, make_frame
from common.paths import prefix

ROAD = VisionStreamType.ROAD


def our_segments() -> list[str]:
    return sorted(n for n in os.listdir("/dev/shm") if n.startswith(f"rp-{prefix()}-"))


class Proc:
    """A procs.py process whose JSON lines are read with a deadline (never a blocking read forever)."""

    def __init__(self, *args: str):
        self.p = subprocess.Popen([sys.executable, "-m", "cereal.visionipc.tests.procs", *args], stdout=subprocess.PIPE)
        self.buf = b""
        self.lines: list[dict] = []

    def read_until(self, cond, timeout: float = 15.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not select.select([self.p.stdout], [], [], 0.05)[0]:
                continue
            chunk = os.read(self.p.stdout.fileno(), 1 << 16)
            if not chunk:
                break  # the process exited
            *done, self.buf = (self.buf + chunk).split(b"\n")
            for line in done:
                self.lines.append(json.loads(line))
                if cond(self.lines[-1]):
                    return self.lines[-1]
        raise AssertionError(f"condition not met; process rc={self.p.poll()}, last lines {self.lines[-3:]}")

    def frames(self, generation: int | None = None) -> list[dict]:
        return [x for x in self.lines if x["event"] == "frame" and generation in (None, x["generation"])]

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.p.poll() is None:
            self.p.send_signal(sig)
        return self.p.wait(10)


@pytest.fixture
def procs():
    started: list[Proc] = []

    def start(*args: str) -> Proc:
        started.append(Proc(*args))
        return started[-1]
    yield start
    for p in started:
        p.stop(signal.SIGKILL)
    for name in our_segments():  # never leave a test's segment behind, even when it failed
        os.unlink(os.path.join("/dev/shm", name))


def check_client_frames(frames: list[dict]) -> None:
    ids = [f["frame_id"] for f in frames]
    assert ids == sorted(set(ids)), "frames out of order or repeated"
    assert sum(f["dropped"] for f in frames[1:]) == ids[-1] - ids[0] + 1 - len(ids), "drops miscounted"
    for f in frames:
        assert f["ok_now"] or not f["intact_now"], f"torn frame reported intact: {f}"
        assert f["ok_late"] or not f["intact_late"], f"torn frame reported intact: {f}"


class TestProcesses:
    def test_two_clients_get_intact_frames_and_segment_is_released(self, procs):
        clients = [procs("client", "--count", "30") for _ in range(2)]
        for c in clients:
            c.read_until(lambda x: x["event"] == "started")
        server = procs("server", "--hz", "100", "--width", "322", "--height", "242", "--stride", "384")
        server.read_until(lambda x: x["event"] == "serving")
        for c in clients:
            summary = c.read_until(lambda x: x["event"] == "summary")
            assert summary["received"] == 30 and summary["malformed"] == 0
            frames = c.frames()
            check_client_frames(frames)
            assert sum(f["intact_late"] and f["ok_late"] for f in frames) >= 25, "fast client lost most frames"
        assert our_segments() == [shm_name(ROAD)[1:]]
        assert server.stop(signal.SIGTERM) == 128 + signal.SIGTERM
        assert our_segments() == []

    def test_slow_client_sees_drops_and_never_a_torn_frame(self, procs):
        server = procs("server", "--hz", "100", "--buffers", "2")
        server.read_until(lambda x: x["event"] == "serving")
        client = procs("client", "--count", "12", "--hold-ms", "60")
        summary = client.read_until(lambda x: x["event"] == "summary")
        frames = client.frames()
        check_client_frames(frames)
        assert summary["dropped"] > 0 and sum(f["dropped"] for f in frames[1:]) > 0
        # Holding a view 60 ms with 2 buffers at 100 Hz: the server rewrote it, and the check noticed.
        overwritten = [f for f in frames if not f["ok_late"]]
        assert overwritten and all(not f["intact_late"] for f in overwritten)

    def test_client_first_then_server_restart_then_client_crash(self, procs):
        client = procs("client", "--count", "100000", "--timeout", "30")
        client.read_until(lambda x: x["event"] == "started")
        time.sleep(0.3)  # the client is waiting for a server that does not exist yet
        assert client.p.poll() is None and our_segments() == []

        first = procs("server", "--hz", "100")
        gen1 = first.read_until(lambda x: x["event"] == "serving")["generation"]
        client.read_until(lambda x: x["event"] == "connected")
        client.read_until(lambda x: len(client.frames(gen1)) >= 10)
        first.stop(signal.SIGKILL)
        assert our_segments() == [shm_name(ROAD)[1:]]  # a SIGKILLed server cannot clean up...

        second = procs("server", "--hz", "100", "--first-id", "1000000")
        gen2 = second.read_until(lambda x: x["event"] == "serving")["generation"]
        assert gen2 != gen1
        client.read_until(lambda x: len(client.frames(gen2)) >= 10)  # same client, new server
        assert our_segments() == [shm_name(ROAD)[1:]]  # ...the next one replaced its segment
        check_client_frames(client.frames(gen1))
        check_client_frames(client.frames(gen2))

        client.stop(signal.SIGKILL)  # clients own nothing: a crash changes nothing for the server
        assert second.p.poll() is None
        assert second.stop(signal.SIGTERM) == 128 + signal.SIGTERM
        assert our_segments() == []


def send_until_received(srv: VisionIpcServer, client: VisionIpcClient, frame, first_id: int = 0):
    """Sends until the client's subscription is up (ZMQ slow joiner) and returns the first frame it got."""
    for fid in range(first_id, first_id + 200):
        srv.send(frame, fid)
        if (got := client.recv(10)) is not None:
            return got
    raise AssertionError("client never received a frame")


class TestInProcess:
    W, H = 64, 48

    def setup_method(self):
        self.frame = make_frame(7, self.W, self.H)

    def test_views_are_zero_copy_and_match_the_frame(self):
        with VisionIpcServer(ROAD, self.W, self.H, stride=128) as srv:
            c = VisionIpcClient(ROAD)
            assert c.connect(2.0) and (c.width, c.height, c.num_buffers) == (self.W, self.H, 4)
            got = send_until_received(srv, c, self.frame)
            y = self.frame[:self.W * self.H].reshape(self.H, self.W)
            uv = self.frame[self.W * self.H:].reshape(self.H // 2, self.W // 2, 2)
            assert got.y.shape == (self.H, self.W) and got.uv.shape == (self.H // 2, self.W // 2, 2)
            assert np.array_equal(got.y, y) and np.array_equal(got.uv, uv)
            assert np.shares_memory(got.y, got.nv12) and np.shares_memory(got.uv, got.nv12)  # views, not copies
            assert not got.y.flags.writeable and not got.uv.flags.writeable
            assert got.valid_after_read()
            again = send_until_received(srv, c, make_frame(8, self.W, self.H), got.frame_id + 1)
            assert again.frame_id == got.frame_id + 1 and again.dropped_before == 0 and frame_ok(again.nv12, 8)

    def test_overwritten_frame_is_detected(self):
        with VisionIpcServer(ROAD, self.W, self.H, num_buffers=2) as srv:
            c = VisionIpcClient(ROAD)
            got = send_until_received(srv, c, self.frame)
            with got:
                pass  # unchanged while in use: no exception
            srv.send(self.frame, got.frame_id + 1)
            assert got.valid_after_read()  # the other buffer was written
            srv.send(self.frame, got.frame_id + 2)
            assert not got.valid_after_read()
            with pytest.raises(FrameOverwritten):
                with got:
                    pass
            srv.send(self.frame, got.frame_id + 3)  # rewrites frame +1's buffer before the client got to it
            nxt = c.recv(100)
            assert nxt.frame_id == got.frame_id + 2 and nxt.dropped_before == 1 and c.dropped_frames >= 1
            assert c.recv(100).frame_id == got.frame_id + 3

    def test_write_in_progress_is_not_handed_out(self):
        def start_rewrite(srv: VisionIpcServer, idx: int) -> None:
            seq_at = 128 + 64 * idx  # the buffer header's seq (see visionipc.c's layout)
            seq = int.from_bytes(srv._mm[seq_at:seq_at + 8], "little")
            srv._mm[seq_at:seq_at + 8] = (seq + 1).to_bytes(8, "little")  # odd: as if the writer were mid-copy

        with VisionIpcServer(ROAD, self.W, self.H) as srv:
            c = VisionIpcClient(ROAD)
            got = send_until_received(srv, c, self.frame)
            queued = srv.send(self.frame, got.frame_id + 1)
            start_rewrite(srv, queued)  # its header still names frame +1, but the pixels are changing
            assert c.recv(100) is None and c.dropped_frames == 1
            start_rewrite(srv, got.buf_idx)
            assert not got.valid_after_read()

    def test_notified_frame_still_being_written_is_not_handed_out(self):
        with VisionIpcServer(ROAD, self.W, self.H) as srv:
            c = VisionIpcClient(ROAD)
            got = send_until_received(srv, c, self.frame)
            stalled = srv.acquire()  # marked as being written; a notification for it must not hand it out
            srv._notify(stalled.buf_idx, srv._seq[0], got.frame_id + 1, 0, 0, True)
            assert c.recv(100) is None and c.dropped_frames == 1

    def test_acquire_publish_in_place(self):
        with VisionIpcServer(ROAD, self.W, self.H) as srv:
            c = VisionIpcClient(ROAD)
            got = send_until_received(srv, c, self.frame)
            buf = srv.acquire()
            assert buf.y.flags.writeable and buf.uv.shape == (self.H // 2, self.W // 2, 2)
            np.copyto(buf.nv12, make_frame(9, self.W, self.H).reshape(-1, self.W))
            srv.publish(buf, got.frame_id + 1, 11, 22, valid=False)
            nxt = c.recv(500)
            assert nxt.frame_id == got.frame_id + 1 and frame_ok(nxt.nv12, 9) and not nxt.valid
            assert (nxt.timestamp_sof, nxt.timestamp_eof) == (11, 22)
            with pytest.raises(ValueError, match="not acquired"):
                srv.publish(buf, got.frame_id + 2)

    def test_wrong_frames_raise_value_error(self):
        with VisionIpcServer(ROAD, self.W, self.H) as srv:
            with pytest.raises(ValueError, match="NV12 frame is 4608 bytes"):
                srv.send(bytes(nv12_size(self.W, self.H) - 1), 0)
            with pytest.raises(ValueError, match="NV12 frame is 4608 bytes"):
                srv.send(np.zeros((self.H, self.W), np.uint8), 0)  # Y only
            with pytest.raises(ValueError, match="uint8"):
                srv.send(np.zeros(nv12_size(self.W, self.H) // 2, np.uint16), 0)
            with pytest.raises(ValueError, match="bytes-like"):
                srv.send("not a frame", 0)
            srv.send(np.zeros((self.H * 3 // 2, self.W), np.uint8)[:, ::-1], 0)  # non-contiguous is fine

    @pytest.mark.parametrize("w, h, stride, buffers", [(63, 48, None, 4), (64, 47, None, 4), (0, 48, None, 4),
                                                       (64, 48, 32, 4), (20000, 48, None, 4), (64, 48, None, 0),
                                                       (64, 48, None, 65)])
    def test_bad_geometry_raises_value_error(self, w, h, stride, buffers):
        with pytest.raises(ValueError, match="even width/height"):
            VisionIpcServer(ROAD, w, h, num_buffers=buffers, stride=stride)
        assert our_segments() == []

    def test_garbage_notifications_do_not_crash_the_client(self):
        with VisionIpcServer(ROAD, self.W, self.H) as srv:
            c = VisionIpcClient(ROAD)
            send_until_received(srv, c, self.frame)
            good = dict(magic=NOTIFY_MAGIC, version=NOTIFY_VERSION, stream=int(ROAD), flags=1, idx=0,
                        gen=srv.generation, seq=2, fid=1, sof=0, eof=0)
            bad = [b"", b"garbage", os.urandom(NOTIFY.size), os.urandom(NOTIFY.size + 1),
                   NOTIFY.pack(*{**good, "magic": b"XXXX"}.values()), NOTIFY.pack(*{**good, "version": 9}.values()),
                   NOTIFY.pack(*{**good, "stream": 2}.values()), NOTIFY.pack(*{**good, "idx": 4}.values()),
                   NOTIFY.pack(*{**good, "idx": 2**32 - 1}.values())]
            for msg in bad:
                srv._sock.send(msg)
            srv._sock.send(NOTIFY.pack(*{**good, "gen": srv.generation ^ 2}.values()))  # no such server
            srv._sock.send(NOTIFY.pack(*{**good, "seq": 3}.values()))  # not a frame's seq: never handed out
            srv.send(self.frame, 77)
            got = c.recv(500)
            assert got is not None and got.frame_id == 77 and frame_ok(got.nv12, 7)
            assert c.malformed == len(bad)

    def test_fuzzed_notifications_never_raise_or_hand_out_a_wrong_frame(self):
        with VisionIpcServer(ROAD, self.W, self.H) as srv:
            c = VisionIpcClient(ROAD)
            real = send_until_received(srv, c, self.frame)
            u64 = st.integers(0, 2**64 - 1)
            fields = st.tuples(st.just(NOTIFY_MAGIC), st.just(NOTIFY_VERSION), st.just(int(ROAD)), st.integers(0, 255),
                               st.integers(0, 2**32 - 1), st.sampled_from([srv.generation, srv.generation ^ 4]), u64,
                               st.one_of(st.just(real.frame_id), u64), u64, u64)

            @settings(max_examples=300, deadline=None)
            @given(st.one_of(fields.map(lambda f: NOTIFY.pack(*f)), st.binary(max_size=2 * NOTIFY.size)))
            def handle(msg: bytes):
                frame = c._handle(msg)
                if frame is not None:  # only a notification that names what the buffer really holds
                    assert (frame.frame_id, frame.buf_idx, frame._seq) == (real.frame_id, real.buf_idx, real._seq)
            handle()

    def test_no_server_means_timeouts_not_hangs(self):
        c = VisionIpcClient(ROAD)
        assert c.connect(0.1) is False and not c.connected
        assert c.recv(50) is None and c.recv(0) is None

    def test_second_live_server_is_refused(self):
        with VisionIpcServer(ROAD, self.W, self.H):
            with pytest.raises(RuntimeError, match="served by pid"):
                VisionIpcServer(ROAD, self.W, self.H)
            assert our_segments() == [shm_name(ROAD)[1:]]

    def test_restart_in_process_and_streams_are_separate(self):
        c = VisionIpcClient(ROAD)
        driver = VisionIpcServer(VisionStreamType.DRIVER, 32, 16)
        srv = VisionIpcServer(ROAD, self.W, self.H)
        first = send_until_received(srv, c, self.frame)
        while c.recv(0) is not None:  # frames the first server sent after that one (a loaded machine queues some)
            pass
        srv.close()
        srv.close()  # idempotent
        assert our_segments() == [shm_name(VisionStreamType.DRIVER)[1:]]
        assert first.valid_after_read() and frame_ok(first.nv12, 7)  # our mapping outlives the unlink
        with pytest.raises(RuntimeError, match="closed"):
            srv.send(self.frame, 1)
        with VisionIpcServer(ROAD, self.W * 2, self.H) as srv2:
            got = send_until_received(srv2, c, make_frame(9, self.W * 2, self.H))
            assert got.generation == srv2.generation != first.generation and c.width == self.W * 2
            assert got.dropped_before == 0 and frame_ok(got.nv12, 9)
        driver.close()
        assert our_segments() == []
