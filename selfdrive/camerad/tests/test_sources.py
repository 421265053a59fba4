"""Each source on its own, in this process: the webcam behind a fake capture device, the video source on
small generated clips, the sim source's wire format."""

import threading
import time

import cv2
import numpy as np
import pytest
import zmq

from cereal import messaging
from cereal.messaging.endpoints import ipc_endpoint
from cereal.visionipc import VisionIpcClient, VisionStreamType
from common.transformations.camera import CameraModel
from selfdrive.camerad import camerad
from selfdrive.camerad.nv12 import bgr_to_nv12, cover_crop, nv12_to_bgr
from selfdrive.camerad.sources import SourceError
from selfdrive.camerad.sources import webcam as webcam_mod
from selfdrive.camerad.sources.sim import ENDPOINT, SIM_HEADER, SimFramePusher, SimSource
from selfdrive.camerad.sources.video import VideoSource
from selfdrive.camerad.sources.webcam import WebcamSource
from selfdrive.camerad.tests.clips import which_frame, write_clip


class FakeCapture:
    """cv2.VideoCapture's surface as camerad uses it: delivers `frames` at `fps`, then fails every read."""

    def __init__(self, frames: list[np.ndarray], fps: float = 30.0, opened: bool = True):
        self.frames, self.fps, self.opened = list(frames), fps, opened
        self.reads = 0
        self.released = False

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self.opened

    def get(self, prop: int) -> float:
        return self.fps if prop == cv2.CAP_PROP_FPS else 0.0

    def read(self):
        self.reads += 1
        time.sleep(1 / self.fps)
        if not self.frames:
            return False, None
        return True, self.frames.pop(0)

    def release(self) -> None:
        self.released = True


def picture(i: int, w: int = 160, h: int = 120) -> np.ndarray:
    rng = np.random.default_rng(i)
    return cv2.resize(rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8), (w, h))


class TestWebcam:
    def test_missing_device_is_a_clear_error(self):
        with pytest.raises(SourceError, match="/dev/video77: no such device"):
            WebcamSource("/dev/video77").open()

    def test_device_that_does_not_open_is_a_clear_error(self):
        with pytest.raises(SourceError, match="/dev/video0: OpenCV cannot open it"):
            WebcamSource("/dev/video0", lambda dev: FakeCapture([], opened=False)).open()

    def test_read_gives_the_newest_frame_once(self):
        cap = FakeCapture([picture(i) for i in range(6)], fps=100)
        src = WebcamSource("/dev/video0", lambda dev: cap)
        src.open()
        try:
            time.sleep(0.2)                      # the camera delivered all 6 meanwhile
            f = src.read(0, 0.0)
            assert f is not None and (f.image == picture(5)).all()
            assert 0 < f.eof_ns - f.sof_ns <= 11_000_000 and f.eof_ns <= time.monotonic_ns()
            assert src.read(1, 0.05) is None     # nothing new: no repeated frame
        finally:
            src.close()
        assert cap.released

    def test_failing_camera_is_counted_and_reopened(self, monkeypatch):
        monkeypatch.setattr(webcam_mod, "RETRY_S", 0.001)
        caps = []

        def factory(dev):
            caps.append(FakeCapture([picture(0)] if not caps else [picture(1)], fps=500))
            return caps[-1]

        src = WebcamSource("/dev/video0", factory)
        src.open()
        try:
            assert (src.read(0, 1.0).image == picture(0)).all()
            f = src.read(1, 2.0)                 # comes from the reopened device
            assert f is not None and (f.image == picture(1)).all()
            assert src.dropped >= webcam_mod.REOPEN_AFTER and src.reopens >= 1 and caps[0].released
        finally:
            src.close()


class TestWebcamDaemonLoop:
    """camerad's real-time loop with the fake device: frames reach VisionIPC clients, a dead camera shows up."""

    def test_frames_served_then_stall_reported(self):
        frames = [picture(i, 320, 180) for i in range(30)]
        cfg = camerad.CameraConfig("webcam", width=64, height=48)
        d = camerad.Camerad(cfg, WebcamSource("/dev/video0", lambda dev: FakeCapture(frames, fps=30)))
        client = VisionIpcClient(VisionStreamType.ROAD)
        state = messaging.sub_sock("roadCameraState")
        d.source.open()
        d.begin(time.monotonic_ns())
        t = threading.Thread(target=d.run, daemon=True)
        t.start()
        try:
            got, states = [], []
            deadline = time.monotonic() + 10
            while not any(not e.roadCameraState.sourceOk for e in states):
                assert time.monotonic() < deadline, "no stall reported"
                buf = client.recv(20)
                if buf is not None:
                    got.append((buf.frame_id, np.array(buf.nv12)))
                states += messaging.drain_sock(state)
        finally:
            d.stop = True
            t.join(timeout=5)
            client.close()
            state.close()
        assert len(got) >= 5
        expected = [bgr_to_nv12(cover_crop(f, 64, 48)) for f in frames]
        for fid, nv12 in got:
            assert any((nv12 == e).all() for e in expected), f"frame {fid} is not a converted camera frame"
        ids = [fid for fid, _ in got]
        assert ids == sorted(set(ids))           # frame ids are 20 Hz slots: increasing
        ok = [e for e in states if e.roadCameraState.sourceOk]
        assert ok and all(e.valid for e in ok)
        assert all(e.roadCameraState.source == "webcam" and e.roadCameraState.width == 64 for e in ok)
        bad = next(e for e in states if not e.roadCameraState.sourceOk)
        assert not bad.valid and bad.roadCameraState.frameId == ok[-1].roadCameraState.frameId  # the last served


class TestVideoSource:
    def test_25fps_clip_resampled_to_20hz_by_timestamp(self, tmp_path):
        src = VideoSource(write_clip(str(tmp_path / "c.mp4"), 10, 25), loop=False, clock_start_ns=1000)
        src.open()
        shown = []
        for slot in range(20):
            f = src.read(slot)
            if f is None:
                break
            shown.append(which_frame(f.image))
            assert f.eof_ns == 1000 + slot * 50_000_000 and f.eof_ns - f.sof_ns == 40_000_000
        # 10 frames at 25 fps last 0.4 s: 8 slots, showing floor(1.25 k)
        assert shown == [0, 1, 2, 3, 5, 6, 7, 8]
        assert src.ended and src.read(9) is None
        src.close()

    def test_10fps_clip_shows_each_frame_twice_and_loops(self, tmp_path):
        src = VideoSource(write_clip(str(tmp_path / "c.mp4"), 3, 10), loop=True)
        src.open()
        shown = [which_frame(src.read(slot).image) for slot in range(14)]
        assert shown == [0, 0, 1, 1, 2, 2] * 2 + [0, 0]
        assert not src.ended and src.passes == 3
        src.close()

    def test_skipped_slots_skip_the_video_ahead(self, tmp_path):
        src = VideoSource(write_clip(str(tmp_path / "c.mp4"), 10, 25))
        src.open()
        assert [which_frame(src.read(slot).image) for slot in (0, 4, 5)] == [0, 5, 6]
        src.close()

    def test_missing_empty_and_garbage_files_are_clear_errors(self, tmp_path):
        with pytest.raises(SourceError, match="no such file"):
            VideoSource(str(tmp_path / "nope.mp4")).open()
        (tmp_path / "empty.mp4").write_bytes(b"")
        (tmp_path / "junk.mp4").write_bytes(np.random.default_rng(0).bytes(50_000))
        for name in ("empty.mp4", "junk.mp4"):
            with pytest.raises(SourceError, match="cannot be decoded"):
                VideoSource(str(tmp_path / name)).open()
        with pytest.raises(SourceError, match="no such file"):
            VideoSource(str(tmp_path)).open()     # a folder is not a video


class TestSimSource:
    # big frames: ZMQ's queues count messages, the kernel's socket buffers bytes; with big frames both stay small
    W, H = 640, 480

    def setup_method(self):
        self.src = SimSource(self.W, self.H)
        self.src.open()
        self.pusher = SimFramePusher(self.W, self.H, self.CAMERA)

    CAMERA = CameraModel(640, 480, 420.0, focal_y=421.0, principal=(330.0, 236.0), dist=(-0.1, 0.02, 0.0, 0.0, 0.0))

    def teardown_method(self):
        self.pusher.close()
        self.src.close()

    def test_frames_pass_with_ids_and_timestamps_bad_ones_are_dropped(self):
        good = np.random.default_rng(0).integers(0, 256, (self.H * 3 // 2, self.W), dtype=np.uint8)
        assert self.pusher.push(good, 7, 100, 200, timeout_ms=2000)
        f = self.src.read(-1, 2.0)
        assert (f.image == good).all() and (f.frame_id, f.sof_ns, f.eof_ns) == (7, 100, 200)
        # the camera that drew it comes with it (float32 on the wire)
        got = (f.camera.fx, f.camera.fy, f.camera.cx, f.camera.cy, *f.camera.distortion)
        assert got == pytest.approx((420.0, 421.0, 330.0, 236.0, -0.1, 0.02, 0.0, 0.0, 0.0), rel=1e-6)

        raw = zmq.Context.instance().socket(zmq.PUSH)
        raw.connect(ipc_endpoint(ENDPOINT))
        wrong_size = SimFramePusher(32, 24)
        try:
            for parts in ([b"junk"], [b"x" * SIM_HEADER.size, good.tobytes()],
                          [SIM_HEADER.pack(b"RPSF", 2, self.W, self.H, 0, 8, 0, 0, *[400.0] * 4, *[0.0] * 5),
                           good.tobytes()[:-1]],
                          [SIM_HEADER.pack(b"RPSF", 2, self.W, self.H, 0, 8, 0, 0, -400.0, 400.0, 320.0, 240.0,
                                           *[0.0] * 5), good.tobytes()]):  # a camera that is none
                raw.send_multipart(parts)
                assert self.src.read(-1, 1.0) is None
            assert wrong_size.push(np.zeros((36, 32), np.uint8), 9, 0, 0, timeout_ms=2000)
            assert self.src.read(-1, 1.0) is None
            assert self.pusher.push(good, 10, 0, 0, timeout_ms=2000)
            assert self.src.read(-1, 2.0).frame_id == 10      # the stream goes on after bad frames
        finally:
            raw.close(0)
            wrong_size.close()
        assert self.src.dropped == 5

    def test_push_fails_instead_of_queueing_when_camerad_is_behind(self):
        frame = np.zeros((self.H * 3 // 2, self.W), np.uint8)
        results = [self.pusher.push(frame, i, 0, 0, timeout_ms=50) for i in range(12)]
        assert results[0] and not results[-1]           # nobody reads: the queue fills, push says so
        ids = []
        while (f := self.src.read(-1, 0.1)) is not None:
            ids.append(f.frame_id)
        assert ids == sorted(ids) and ids[0] == 0 and len(ids) == sum(results)


def test_nv12_of_clip_frames_reads_back():
    # which_frame works on converted frames too (the process tests rely on it)
    img = np.full((48, 64, 3), 10 + 20 * 4, np.uint8)
    assert which_frame(nv12_to_bgr(bgr_to_nv12(img))) == 4


class TestConsumedPace:
    def test_frame_is_resent_until_the_consumer_answers(self, tmp_path, monkeypatch):
        monkeypatch.setattr(camerad, "RESEND_S", 0.1)
        cfg = camerad.CameraConfig("video", path=write_clip(str(tmp_path / "c.mp4"), 10, 25), pace="consumed",
                                   width=64, height=48)
        d = camerad.Camerad(cfg, VideoSource(cfg.path))
        client = VisionIpcClient(VisionStreamType.ROAD)
        pm = messaging.PubMaster(["modelV2"])
        d.source.open()
        t = threading.Thread(target=d.run, daemon=True)
        t.start()
        try:
            ids = []
            deadline = time.monotonic() + 10
            while len(ids) < 4:                       # no answer yet: frame 0 again and again
                assert time.monotonic() < deadline
                if (buf := client.recv(100)) is not None:
                    ids.append(buf.frame_id)
            assert set(ids) == {0}
            shown = []
            while len(shown) < 3:                     # answering each frame id moves it on by one
                assert time.monotonic() < deadline
                if (buf := client.recv(100)) is None:
                    continue
                if not shown or buf.frame_id != shown[-1][0]:
                    shown.append((buf.frame_id, which_frame(nv12_to_bgr(np.array(buf.nv12)))))
                msg = messaging.new_message("modelV2")
                msg.modelV2.frameId = buf.frame_id
                pm.send("modelV2", msg)
        finally:
            d.stop = True
            t.join(timeout=5)
            client.close()
            pm.close()
        assert shown == [(0, 0), (1, 1), (2, 2)]
