"""camerad as a real process: frames read back through VisionIPC, roadCameraState, start-up errors."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import av
import numpy as np
import pytest

from cereal import messaging
from cereal.visionipc import VisionIpcClient, VisionStreamType, shm_name
from common.params import Params
from common.transformations.camera import CameraModel
from common.transformations.camera_file import camera_to_dict, frame_camera
from selfdrive.camerad import camerad
from selfdrive.camerad.nv12 import to_nv12
from selfdrive.camerad.sources.sim import SimFramePusher
from selfdrive.camerad.tests.clips import write_clip

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
UDACITY = os.path.join(REPO, "..", "shared", "data", "udacity-dashcam", "solidWhiteRight.mp4")
needs_udacity = pytest.mark.skipif(not os.path.isfile(UDACITY),
                                   reason=f"the Udacity dash-cam clip is not at {os.path.normpath(UDACITY)}")
UDACITY_SLOTS = 177   # 221 frames at 25 fps = 8.84 s: slots 0..176 (t = 0..8.80 s), the next pass starts at 177


def udacity_source_frame(slot: int) -> int:
    """Which Udacity frame camerad shows in a slot: the last one with pts <= slot * 50 ms, per pass."""
    return (slot % UDACITY_SLOTS) * 25 // 20


def reference(path: str, frames: list[int], width: int, height: int) -> dict[int, np.ndarray]:
    """Those frames decoded straight from the file with PyAV, put through the same fit + NV12 conversion."""
    out = {}
    with av.open(path) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i in frames:
                out[i] = to_nv12(f.to_ndarray(format="bgr24"), width, height)
            if i >= max(frames):
                return out
    raise AssertionError(f"{path} has {i + 1} frames, wanted {max(frames)}")


def start_camerad(tmp_path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "selfdrive.camerad.camerad", *args],
                            stderr=open(tmp_path / "camerad.stderr", "w"))


class CameradProcess:
    def setup_method(self):
        self.proc: subprocess.Popen | None = None
        self.client = VisionIpcClient(VisionStreamType.ROAD)
        self.state = messaging.sub_sock("roadCameraState")

    def teardown_method(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.wait(timeout=10) == 0, "camerad must exit cleanly on SIGTERM"
        self.client.close()
        self.state.close()
        assert not os.path.exists("/dev/shm" + shm_name(VisionStreamType.ROAD)), "shared memory left behind"

    def alive(self, tmp_path) -> None:
        assert self.proc.poll() is None, (tmp_path / "camerad.stderr").read_text()


@needs_udacity
class TestVideo(CameradProcess):
    def test_realtime_frames_match_direct_decode(self, tmp_path):
        self.proc = start_camerad(tmp_path, "--source", "video", "--path", UDACITY, "--fov", "60")
        got: list[tuple[int, int, np.ndarray]] = []
        deadline = time.monotonic() + 30
        while len(got) < 30:
            assert time.monotonic() < deadline, f"only {len(got)} frames"
            self.alive(tmp_path)
            buf = self.client.recv(100)
            if buf is not None:
                nv12 = np.array(buf.nv12)
                if buf.valid_after_read():
                    got.append((buf.frame_id, buf.timestamp_eof, nv12))
        ref = reference(UDACITY, [udacity_source_frame(fid) for fid, _, _ in got], 960, 540)
        for fid, _, nv12 in got:
            assert nv12.shape == (540 * 3 // 2, 960)  # the video's own size: nothing cropped
            assert (nv12 == ref[udacity_source_frame(fid)]).all(), f"frame {fid}"
        # timestamps are video time: exactly 50 ms per slot
        (f0, t0, _), (f1, t1, _) = got[0], got[-1]
        assert t1 - t0 == (f1 - f0) * 50_000_000
        states = [m.roadCameraState for m in messaging.drain_sock(self.state)]
        assert states and all(s.sourceOk and s.source == "video" and (s.width, s.height) == (960, 540) for s in states)
        # the camera it was told: 60 deg across 960 px
        assert states[-1].cameraFrom == "fov 60"
        assert list(states[-1].intrinsics) == pytest.approx([831.38, 831.38, 480.0, 270.0], abs=0.01)
        assert frame_camera(states[-1]).hfov_deg == pytest.approx(60.0, abs=1e-3)

    def test_lockstep_serves_every_frame(self, tmp_path):
        pm = messaging.PubMaster(["modelV2"])    # this test is the consumer: it echoes each frame id it took
        self.proc = start_camerad(tmp_path, "--source", "video", "--path", UDACITY, "--pace", "consumed",
                                  "--width", "582", "--height", "436")
        frames: dict[int, np.ndarray] = {}
        deadline = time.monotonic() + 60
        while len(frames) < 50:
            assert time.monotonic() < deadline, f"stuck after {len(frames)} frames"
            self.alive(tmp_path)
            buf = self.client.recv(100)
            if buf is None:
                continue
            if buf.frame_id not in frames:        # a resend repeats an id: take it once
                frames[buf.frame_id] = np.array(buf.nv12)
                assert buf.valid_after_read()
            msg = messaging.new_message("modelV2")
            msg.modelV2.frameId = buf.frame_id
            pm.send("modelV2", msg)
        pm.close()
        assert sorted(frames) == list(range(len(frames))), "lockstep skipped a frame"
        assert self.client.dropped_frames == 0
        ref = reference(UDACITY, [udacity_source_frame(fid) for fid in frames], 582, 436)
        for fid, nv12 in frames.items():
            assert (nv12 == ref[udacity_source_frame(fid)]).all(), f"frame {fid}"
        # a 16:9 video served 4:3: the sides are cropped, and the camera said is the one that sees the crop
        state = [m.roadCameraState for m in messaging.drain_sock(self.state)][-1]
        cam = frame_camera(state)
        assert (cam.width, cam.height) == (582, 436) and state.cameraFrom == "assumed fov 65.2"
        assert cam.fx == pytest.approx(750.6 * 436 / 540, rel=1e-3) and cam.cx == pytest.approx(291.0, abs=0.5)
        assert cam.hfov_deg < 52.0  # of the assumed 65.2 deg across 960 px, 720 px are left


class TestVideoEnd(CameradProcess):
    def test_end_of_video_keeps_reporting_source_stopped(self, tmp_path):
        clip = write_clip(str(tmp_path / "short.mp4"), 10, 25)        # 8 slots of video
        self.proc = start_camerad(tmp_path, "--source", "video", "--path", clip, "--no-loop",
                                  "--width", "64", "--height", "48")
        events: list = []
        deadline = time.monotonic() + 30
        while sum(not e.roadCameraState.sourceOk for e in events) < 6:
            assert time.monotonic() < deadline, "the end of the video was not reported"
            self.alive(tmp_path)
            events += messaging.drain_sock(self.state, wait_for_one=False)
            time.sleep(0.05)
        ok = [e for e in events if e.roadCameraState.sourceOk]
        stopped = [e for e in events if not e.roadCameraState.sourceOk]
        assert ok and max(e.roadCameraState.frameId for e in ok) == 7
        assert all(not e.valid and e.roadCameraState.frameId == 7 for e in stopped)
        assert events.index(stopped[0]) > events.index(ok[-1])       # nothing served after the end
        # still published at the camera's rate while stopped: 50 ms apart
        gaps = np.diff([e.logMonoTime for e in stopped]) / 1e6
        assert 25 < np.median(gaps) < 100


class TestSim(CameradProcess):
    W, H = 320, 240

    def test_pushed_frames_are_served_exactly_bad_ones_dropped_stall_reported(self, tmp_path):
        self.proc = start_camerad(tmp_path, "--source", "sim", "--width", str(self.W), "--height", str(self.H))
        pusher = SimFramePusher(self.W, self.H)
        try:
            # no bridge yet: camerad says so
            deadline = time.monotonic() + 30
            while (m := messaging.recv_one(self.state, 100)) is None:
                assert time.monotonic() < deadline
                self.alive(tmp_path)
            assert not m.valid and not m.roadCameraState.sourceOk and m.roadCameraState.source == "sim"

            rng = np.random.default_rng(3)
            frame = lambda: rng.integers(0, 256, (self.H * 3 // 2, self.W), dtype=np.uint8)  # noqa: E731
            fid = 0
            while self.client.recv(0) is None:      # until this client is connected (VisionIPC's slow joiner)
                assert fid < 500
                pusher.push(frame(), fid, 0, 0)
                fid += 1
                time.sleep(0.02)
            sent, got = {}, {}
            for k in range(1000, 1020):
                sent[k] = frame()
                assert pusher.push(sent[k], k, k * 10, k * 10 + 5, timeout_ms=2000)
                if k == 1010:
                    assert SimFramePusher(32, 24).push(np.zeros((36, 32), np.uint8), 5000, 0, 0, timeout_ms=2000)
                while (buf := self.client.recv(2000)) is not None and buf.frame_id < k:
                    pass
                assert buf is not None, f"frame {k} not served"
                got[buf.frame_id] = (np.array(buf.nv12), buf.timestamp_sof, buf.timestamp_eof)
            assert sorted(got) == list(range(1000, 1020)), "every pushed frame is served, with the bridge's ids"
            for k, (nv12, sof, eof) in got.items():
                assert (nv12 == sent[k]).all() and (sof, eof) == (k * 10, k * 10 + 5)

            events = []
            deadline = time.monotonic() + 10
            while not events or events[-1].roadCameraState.sourceOk:    # the bridge went quiet
                assert time.monotonic() < deadline
                events += messaging.drain_sock(self.state)
                time.sleep(0.02)
            last = events[-1].roadCameraState
            assert not events[-1].valid and last.frameId == 1019 and last.framesDropped == 1
        finally:
            pusher.close()


class TestStartErrors:
    def test_bad_sources_exit_with_a_message_and_leave_nothing(self, tmp_path):
        (tmp_path / "junk.mp4").write_bytes(np.random.default_rng(0).bytes(20_000))
        cases = {  # args -> (exit status, message)
            ("--source", "video", "--path", str(tmp_path / "missing.mp4")): (1, "missing.mp4: no such file"),
            ("--source", "video", "--path", str(tmp_path / "junk.mp4")): (1, "junk.mp4: cannot be decoded"),
            ("--source", "webcam", "--device", "/dev/video63"): (1, "/dev/video63: no such device"),
        }
        if os.path.exists(UDACITY):  # a camera file of a 4:3 camera cannot be this 16:9 video's
            (tmp_path / "cam43.json").write_text(json.dumps(camera_to_dict(CameraModel(640, 480, 500.0))))
            cases[("--source", "video", "--path", UDACITY, "--camera-params", str(tmp_path / "cam43.json"))] = \
                (1, "another aspect ratio")
        # side by side, so one prefix each (a prefix has one road camera)
        prefixes = {args: f"{os.environ['ROADPILOT_PREFIX']}-{i}" for i, args in enumerate(cases)}
        procs = {args: subprocess.Popen([sys.executable, "-m", "selfdrive.camerad.camerad", *args],
                                        env={**os.environ, "ROADPILOT_CAMERA_VIDEO": "", "ROADPILOT_PREFIX": prefix},
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for args, prefix in prefixes.items()}
        for args, p in procs.items():
            _, err = p.communicate(timeout=60)
            rc, message = cases[args]
            assert p.returncode == rc and message in err, (args, p.returncode, err[-500:])
            assert not os.path.exists(f"/dev/shm/rp-{prefixes[args]}-vipc-road"), "shared memory left behind"
            shutil.rmtree(f"/tmp/rp-{prefixes[args]}", ignore_errors=True)

    @pytest.mark.parametrize("args,message", [
        (["--source", "video"], "needs --path"),
        (["--source", "webcam", "--pace", "consumed"], "runs with --pace realtime"),
        (["--source", "sim", "--pace", "realtime"], "runs with --pace pushed"),
        (["--source", "sim", "--width", "641", "--height", "480"], "even width"),
        (["--source", "sim", "--width", "640"], "--width and --height together"),
        (["--source", "webcam", "--fov", "200"], "10..170 degrees"),
        (["--source", "webcam", "--camera-params", "/nonexistent.json"], "cannot read camera file"),
        (["--source", "cam"], "invalid choice"),
    ])
    def test_bad_arguments(self, args, message, capsys):
        with pytest.raises(SystemExit) as e:
            camerad.parse_args(args, env={})
        assert e.value.code == 2 and message in capsys.readouterr().err

    def test_defaults_follow_environment_then_manager_mode(self):
        env = {"ROADPILOT_CAMERA_SOURCE": "video", "ROADPILOT_CAMERA_VIDEO": "/x.mp4"}
        cfg = camerad.parse_args([], env=env)
        assert (cfg.source, cfg.path, cfg.pace, cfg.width, cfg.height) == ("video", "/x.mp4", "realtime", 0, 0)
        assert (cfg.camera_params, cfg.fov) == (None, None)
        assert camerad.parse_args([], env={**env, "ROADPILOT_CAMERA_FOV": "60"}).fov == 60.0
        Params().put("ManagerMode", "device")
        assert camerad.parse_args([], env={}).source == "webcam"
        Params().put("ManagerMode", "sim")
        assert camerad.parse_args([], env={}).pace == "pushed"
