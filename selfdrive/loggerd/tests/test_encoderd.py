import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from cereal import messaging
from cereal.visionipc import VisionIpcServer, VisionStreamType
from common.paths import routes_dir, run_dir
from selfdrive.loggerd import encoderd
from selfdrive.loggerd.logreader import LogReader
from selfdrive.loggerd.tests.frame_server import pattern, timestamps
from selfdrive.loggerd.video_writer import GOP, VIDEO_NAME, SegmentTracker, VideoWriter
from tools.lib.framereader import FrameReader, frame_locations

W, H = 320, 240


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def current_route_file() -> str:
    return os.path.join(run_dir(create=True), "current_route")


def fake_route(name: str = "r1", segments: int = 1) -> str:
    """What loggerd leaves for encoderd: a route folder with segment folders, named in current_route."""
    path = os.path.join(routes_dir(), name)
    for s in range(segments):
        os.makedirs(os.path.join(path, str(s)), exist_ok=True)
    with open(current_route_file(), "w") as f:
        f.write(name + "\n")
    return path


class TestVideoWriter:
    def test_frames_read_back_by_position_within_codec_loss(self, tmp_path):
        path = str(tmp_path / VIDEO_NAME)
        w = VideoWriter(path, W, H)
        assert [w.write(pattern(k, W, H)) for k in range(25)] == list(range(25))
        w.close()
        fr = FrameReader(path)
        for k in (0, 24, 3, 3, 20, 1):   # forward, backward and repeated reads
            got = fr.get(k)
            assert got.shape == (H * 3 // 2, W)
            assert psnr(got, pattern(k, W, H)) > 30, k
            assert psnr(got, pattern(k + 1, W, H)) < 25, "neighbouring frames must be told apart"
        with pytest.raises(IndexError):
            fr.get(25)
        assert len(list(fr)) == 25

    def test_unfinished_file_is_readable_up_to_the_last_second(self, tmp_path):
        # the file as a SIGKILL would leave it: never closed
        path = str(tmp_path / VIDEO_NAME)
        w = VideoWriter(path, W, H)
        for k in range(3 * GOP + 5):
            w.write(pattern(k, W, H))
        shutil.copy(path, tmp_path / "killed.mp4")
        w.close()
        frames = list(FrameReader(str(tmp_path / "killed.mp4")))
        assert 2 * GOP <= len(frames) <= 3 * GOP + 5
        assert psnr(frames[-1], pattern(len(frames) - 1, W, H)) > 30


class TestSegmentTracker:
    def test_follows_route_and_rollover(self):
        t = SegmentTracker(current_route_file(), routes_dir())
        assert t.poll() is None                      # no loggerd
        path = fake_route("a", segments=2)
        assert t.poll() == (path, 1)                 # joins a running route at its newest segment
        os.makedirs(os.path.join(path, "2"))
        assert t.poll() == (path, 2)
        path_b = fake_route("b")
        assert t.poll() == (path_b, 0)               # loggerd restarted: a new route
        os.remove(current_route_file())
        assert t.poll() is None

    def test_route_named_but_missing(self):
        with open(current_route_file(), "w") as f:
            f.write("gone\n")
        assert SegmentTracker(current_route_file(), routes_dir()).poll() is None


class TestEncoderdInProcess:
    """The daemon's loop in threads, frames from a VisionIPC server in this process."""

    def setup_method(self):
        self.server = VisionIpcServer(VisionStreamType.ROAD, W, H, num_buffers=8)
        self.idx = messaging.sub_sock("roadEncodeIdx")
        self.d = encoderd.Encoderd()
        self.thread = threading.Thread(target=self.d.run, daemon=True)

    def teardown_method(self):
        self.d.stop = True
        self.thread.join(timeout=10)
        self.server.close()
        self.idx.close()

    def send_until(self, fid: int, cond) -> int:
        """Sends frames fid, fid + 1... until cond() (VisionIPC and index sockets have slow joiners); next id."""
        first = fid
        while not cond():
            assert fid < first + 200, "encoderd never got there"
            self.server.send(pattern(fid, W, H), fid)
            fid += 1
            time.sleep(0.02)
        return fid

    def index_flowing(self) -> int:
        """Sends frames until this test's index socket gets one; returns the next frame id to send."""
        got: list = []
        fid = self.send_until(0, lambda: got.extend(messaging.drain_sock(self.idx)) or got)
        wait_for(lambda: self.d.encoder.jobs.unfinished_tasks == 0, "the encoder to catch up", timeout=10)
        self.warmup = got
        return fid

    def stop(self) -> None:
        self.d.stop = True
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()

    def test_falls_behind_drops_and_counts_never_blocks(self, monkeypatch):
        fake_route()
        slow_write = VideoWriter.write
        monkeypatch.setattr(VideoWriter, "write", lambda w, f: (time.sleep(0.05), slow_write(w, f))[1])
        self.thread.start()
        fid = self.index_flowing()
        received, written = self.d.received, self.d.encoder.written
        for k in range(fid, fid + 60):    # 60 frames at ~200 Hz against a 20 Hz encoder
            self.server.send(pattern(k, W, H), k)
            time.sleep(0.005)
        received_while_slow = self.d.received - received
        self.stop()
        assert received_while_slow >= 60 * 0.9, "reception must keep up while the encoder is slow"
        assert self.d.dropped > 0
        assert self.d.encoder.written - written + self.d.dropped >= 60
        idx = [m.roadEncodeIdx for m in self.warmup + messaging.drain_sock(self.idx)]
        # no gaps in the file (the first messages may have gone before this test's socket was connected)
        assert [i.segmentId for i in idx] == list(range(idx[0].segmentId, self.d.encoder.written))
        ids = [i.frameId for i in idx]
        assert ids == sorted(set(ids)) and ids[-1] < fid + 60

    def test_resent_frame_ids_are_recorded_once_and_nothing_without_a_route(self):
        self.thread.start()
        self.send_until(0, lambda: self.d.received > 3)
        assert self.d.not_recorded > 0 and self.d.encoder.written == 0   # no current_route: nothing recorded
        path = fake_route()
        fid = self.index_flowing()
        for k in (fid, fid, fid + 1, fid + 1, fid + 2):  # camerad's lockstep resends repeat an id
            self.server.send(pattern(k, W, H), k)
            time.sleep(0.03)
        got: list = []

        def last_indexed() -> bool:
            got.extend(messaging.drain_sock(self.idx))
            return bool(got) and got[-1].roadEncodeIdx.frameId == fid + 2

        wait_for(last_indexed, "the last frame's index", timeout=10)
        self.stop()
        assert self.d.duplicates == 2
        ids = [m.roadEncodeIdx.frameId for m in got + messaging.drain_sock(self.idx)]
        assert [i for i in ids if i >= fid] == [fid, fid + 1, fid + 2]
        frames = list(FrameReader(os.path.join(path, "0", VIDEO_NAME)))
        assert len(frames) == self.d.encoder.written and psnr(frames[-1], pattern(fid + 2, W, H)) > 30


def start(tmp_path, name: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.PIPE, text=True,
                            stderr=open(tmp_path / f"{name}.stderr", "w"))


def wait_for(cond, what: str, timeout: float = 30.0, procs=()) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        for p in procs:
            assert p.poll() is None, f"a process exited (rc {p.returncode}) while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def segments(index_msgs: list) -> set[int]:
    return {m.roadEncodeIdx.segmentNum for m in index_msgs}


class TestRecordedRoute:
    """loggerd + encoderd + a frame server as real processes; the route is then read back like replay would."""

    def setup_method(self):
        self.procs: list[subprocess.Popen] = []
        self.idx = messaging.sub_sock("roadEncodeIdx")

    def teardown_method(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        self.idx.close()

    def run_route(self, tmp_path, segment_seconds: float, until) -> tuple[subprocess.Popen, str, list]:
        """Records until `until(index messages so far)`; returns encoderd (still running), the route, the messages."""
        loggerd = start(tmp_path, "loggerd", "selfdrive.loggerd.loggerd", "--segment-seconds", str(segment_seconds))
        self.procs.append(loggerd)
        wait_for(lambda: os.path.exists(current_route_file()), "loggerd's route", procs=[loggerd])
        route = open(current_route_file()).read().strip()
        enc = start(tmp_path, "encoderd", "selfdrive.loggerd.encoderd")
        server = start(tmp_path, "server", "selfdrive.loggerd.tests.frame_server", str(W), str(H))
        self.procs += [enc, server]
        assert server.stdout.readline().strip() == "serving"
        seen: list = []
        wait_for(lambda: seen.extend(messaging.drain_sock(self.idx)) or until(seen), "recorded frames",
                 procs=[loggerd, enc, server])
        server.kill()
        return enc, route, seen

    def test_route_plays_back_frame_by_id_across_segments(self, tmp_path):
        enc, route, seen = self.run_route(tmp_path, 1.0, lambda seen: len(segments(seen)) >= 3)
        enc.send_signal(signal.SIGTERM)
        assert enc.wait(timeout=20) == 0
        loggerd = self.procs[0]
        loggerd.send_signal(signal.SIGTERM)     # after encoderd: its last index messages go into the log
        assert loggerd.wait(timeout=20) == 0

        index = frame_locations(LogReader(route))
        ids = sorted(index)
        assert len(ids) >= 20   # 3 segments of 1 s, the first one joined late
        assert len(ids) >= 0.9 * (ids[-1] - ids[0] + 1), "frames lost under normal load"
        route_path = os.path.join(routes_dir(), route)
        by_segment: dict[int, list[int]] = {}
        for fid in ids:
            by_segment.setdefault(index[fid].segment, []).append(fid)
        assert len(by_segment) >= 3
        readers = {}
        for seg, fids in by_segment.items():
            # positions are 0..n-1 in frame order, and the segment's file holds exactly those frames
            assert [index[f].position for f in fids] == list(range(len(fids)))
            assert {index[f].path for f in fids} == {f"{seg}/{VIDEO_NAME}"}
            readers[seg] = FrameReader(os.path.join(route_path, str(seg), VIDEO_NAME))
            assert sum(1 for _ in readers[seg]) == len(fids), f"segment {seg}"
        # segments follow frame order: the video splits where loggerd rolled over
        assert [index[f].segment for f in ids] == sorted(index[f].segment for f in ids)
        for fid in [*ids[::7], *(fids[0] for fids in by_segment.values())]:
            loc = index[fid]
            frame = readers[loc.segment].get(loc.position)
            assert psnr(frame, pattern(fid, W, H)) > 30, f"frame {fid}"
            assert loc.timestamp_eof == timestamps(fid)[1]
        # loggerd logs each index message in the segment it names, or the next one when it rolled over meanwhile
        for seg in sorted(segments(seen))[1:]:
            nums = {ev.roadEncodeIdx.segmentNum for ev in LogReader(f"{route}/{seg}") if ev.which() == "roadEncodeIdx"}
            assert nums and nums <= {seg - 1, seg}, (seg, nums)

    def test_killed_encoderd_leaves_a_readable_video(self, tmp_path):
        enc, route, seen = self.run_route(tmp_path, 60.0, lambda seen: len(seen) >= 2 * GOP + 5)
        enc.kill()
        enc.wait()
        seen += messaging.drain_sock(self.idx)
        frames = list(FrameReader(os.path.join(routes_dir(), route, "0", VIDEO_NAME)))
        # everything but the last unfinished fragment (under a second) survives, and it is the right frames
        assert len(seen) - GOP - 5 <= len(frames) <= len(seen)
        for k in (0, len(frames) - 1):
            assert psnr(frames[k], pattern(seen[k].roadEncodeIdx.frameId, W, H)) > 30
