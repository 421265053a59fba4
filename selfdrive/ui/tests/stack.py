"""What uid's tests and benchmark run it against: real processes and sockets, synthesised services.

There is no driving model yet, so the services a page shows (modelV2, liveCalibration, carState, selfdriveState,
longitudinalPlan, deviceState) come from `SynthServices`, a publisher thread whose content a test can change.
Frames come from camerad's video source (real dashcam footage, `start_camerad`) or from `FrameServer`, a
VisionIPC server thread serving given NV12 frames at 20 Hz (for tests that need a known picture or load).
Pages are played by `Reader` (a WebSocket client reading everything in a thread) or by the real browser.
"""

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
import psutil
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from cereal import messaging
from cereal.visionipc import VisionIpcServer, VisionStreamType
from selfdrive.camerad.nv12 import bgr_to_nv12
from selfdrive.ui.hub import FRAME_HEADER, FRAME_MAGIC

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
UDACITY = os.path.join(REPO, "..", "shared", "data", "udacity-dashcam", "solidWhiteRight.mp4")
needs_udacity = pytest.mark.skipif(not os.path.isfile(UDACITY),
                                   reason=f"real dashcam clip not found at {UDACITY} (shared test data)")
W, H = 1164, 874
READ_WAIT_S = 20.0
LANE_X = 100.0 * (np.arange(33) / 32) ** 2   # m, finer near the car like a model's lane lines


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port: int, path: str = "/", timeout: float = 2.0) -> tuple[int, dict[str, str], bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def start_uid(log_dir, port: int, *args: str, timeout: float = 20.0) -> subprocess.Popen:
    """uid as its own process, once it answers HTTP. Its stderr goes to <log_dir>/uid.stderr."""
    err = open(os.path.join(log_dir, "uid.stderr"), "ab")
    proc = subprocess.Popen([sys.executable, "-m", "selfdrive.ui.uid", "--port", str(port), *args],
                            stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"uid exited with {proc.returncode}: "
                                 f"{open(os.path.join(log_dir, 'uid.stderr')).read()[-2000:]}")
        try:
            if http_get(port, "/", 0.5)[0] == 200:
                return proc
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("uid did not answer HTTP in time")
        time.sleep(0.1)


def start_camerad(log_dir, video: str = UDACITY, *args: str) -> subprocess.Popen:
    err = open(os.path.join(log_dir, "camerad.stderr"), "ab")
    return subprocess.Popen([sys.executable, "-m", "selfdrive.camerad.camerad", "--source", "video", "--path", video,
                             "--loop", *args], stdout=subprocess.DEVNULL, stderr=err)


def stop(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


@dataclass
class Scene:
    """What SynthServices publishes; a test may change fields while it runs."""
    path_y0: float = 0.3          # m left of the camera at the car
    path_c: float = 0.003         # y grows as c * x^2: a left curve, so left and right are not mirror images
    rpy: tuple[float, float, float] = (0.0, 0.03, 0.0)   # liveCalibration (roll, pitch, yaw), rad
    cam_height: float = 1.22
    lead_x: float | None = 35.0
    v_ego: float = 25.0
    v_cruise: float = 30.0
    state: str = "enabled"
    alert1: str = "Take Control"
    alert2: str = "Steering Temporarily Unavailable"
    alert_status: str = "userPrompt"
    alert_size: str = "mid"
    lane_offsets: tuple[float, ...] = (5.55, 1.85, -1.85, -5.55)
    lane_probs: tuple[float, ...] = (0.3, 0.9, 0.9, 0.3)
    edges: tuple[float, float] = (7.4, -7.4)

    def path_y(self, x):
        return self.path_y0 + self.path_c * np.asarray(x, dtype=float) ** 2


def fill_model(md, sc: Scene, frame_id: int) -> None:
    md.frameId = frame_id
    md.timestampEof = time.monotonic_ns()
    md.confidence = 1.0
    pos = md.init("position")
    pos.x = [float(x) for x in LANE_X]
    pos.y = [float(y) for y in sc.path_y(LANE_X)]
    pos.z = [0.0] * len(LANE_X)
    pos.t = [float(t) for t in LANE_X / max(sc.v_ego, 1.0)]
    lanes = md.init("laneLines", len(sc.lane_offsets))
    for ll, off in zip(lanes, sc.lane_offsets, strict=True):
        ll.x, ll.y, ll.z = [float(x) for x in LANE_X], [float(y) for y in sc.path_y(LANE_X) + off], [0.0] * len(LANE_X)
    md.laneLineProbs = list(sc.lane_probs)
    edges = md.init("roadEdges", len(sc.edges))
    for e, off in zip(edges, sc.edges, strict=True):
        e.x, e.y, e.z = [float(x) for x in LANE_X], [float(y) for y in sc.path_y(LANE_X) + off], [0.0] * len(LANE_X)
    leads = md.init("leads", 1)
    if sc.lead_x is not None:
        leads[0].x, leads[0].y = [float(sc.lead_x)] * 3, [float(sc.path_y(sc.lead_x))] * 3
        leads[0].v, leads[0].t, leads[0].prob = [20.0] * 3, [0.0, 2.0, 4.0], 0.95


class SynthServices:
    """Publishes the services uid shows: the 100 Hz ones at 50 Hz (alive for a display), modelV2 and
    longitudinalPlan at 20 Hz, liveCalibration at 4 Hz, deviceState at 2 Hz."""

    def __init__(self, scene: Scene | None = None):
        self.scene = scene or Scene()
        self.pm = messaging.PubMaster(["modelV2", "liveCalibration", "carState", "selfdriveState",
                                       "longitudinalPlan", "deviceState"])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        k = 0
        while not self._stop.is_set():
            sc = self.scene
            msg = messaging.new_message("carState")
            msg.carState.vEgo = sc.v_ego
            self.pm.send("carState", msg)
            msg = messaging.new_message("selfdriveState")
            sd = msg.selfdriveState
            sd.state, sd.enabled, sd.active = sc.state, sc.state != "disabled", sc.state != "disabled"
            sd.alertText1, sd.alertText2, sd.alertStatus, sd.alertSize = sc.alert1, sc.alert2, sc.alert_status, \
                sc.alert_size
            self.pm.send("selfdriveState", msg)
            if k % 2 == 0:
                msg = messaging.new_message("modelV2")
                fill_model(msg.modelV2, sc, k // 2)
                self.pm.send("modelV2", msg)
                msg = messaging.new_message("longitudinalPlan")
                msg.longitudinalPlan.vCruise = sc.v_cruise
                self.pm.send("longitudinalPlan", msg)
            if k % 12 == 0:
                msg = messaging.new_message("liveCalibration")
                msg.liveCalibration.rpyCalib = list(sc.rpy)
                msg.liveCalibration.height = [sc.cam_height]
                msg.liveCalibration.calStatus = "calibrated"
                self.pm.send("liveCalibration", msg)
            if k % 25 == 0:
                msg = messaging.new_message("deviceState")
                msg.deviceState.cpuTempC = [51.5, 55.0]
                msg.deviceState.freeSpacePercent = 80.0
                self.pm.send("deviceState", msg)
            k += 1
            self._stop.wait(0.02)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.pm.close()


class FrameServer:
    """A VisionIPC road stream serving `frames` (NV12 arrays, in turn) at `hz`."""

    def __init__(self, frames: list[np.ndarray], hz: float = 20.0):
        self.frames, self.hz, self.sent = frames, hz, 0
        self.server = VisionIpcServer(VisionStreamType.ROAD, frames[0].shape[1], frames[0].shape[0] * 2 // 3)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic_ns()
            self.server.send(self.frames[self.sent % len(self.frames)], self.sent, now, now)
            self.sent += 1
            self._stop.wait(max(0.0, t0 + self.sent / self.hz - time.monotonic()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.server.close()


def noise_frames(n: int, seed: int = 0) -> list[np.ndarray]:
    """NV12 frames of noise: JPEG cannot shrink them, so every frame is big (a worst case for the link)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (H * 3 // 2, W), dtype=np.uint8) for _ in range(n)]


def gradient_frame() -> np.ndarray:
    """A 1164x874 NV12 picture with structure (JPEG-friendly, like a real scene)."""
    yy, xx = np.mgrid[0:874, 0:1164]
    bgr = np.stack(((xx // 4) % 256, (yy // 4) % 256, ((xx + yy) // 8) % 256), axis=-1).astype(np.uint8)
    return bgr_to_nv12(bgr)


class Reader:
    """A page stand-in that reads everything in a thread: frames (id, JPEG) and the newest state."""

    def __init__(self, port: int):
        self.ws = connect(f"ws://127.0.0.1:{port}/ws", max_size=None, compression=None, open_timeout=10,
                          legacy=True)
        self.frame_ids: list[int] = []
        self.frame_bytes = 0
        self.last_jpeg = b""
        self.state: dict | None = None
        self.texts: list[dict] = []
        self.closed: Exception | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for msg in self.ws:
                if isinstance(msg, bytes):
                    magic, fid, _, _ = FRAME_HEADER.unpack(msg[:FRAME_HEADER.size])
                    assert magic == FRAME_MAGIC
                    self.frame_ids.append(fid)
                    self.frame_bytes += len(msg)
                    self.last_jpeg = msg[FRAME_HEADER.size:]
                else:
                    obj = json.loads(msg)
                    if obj["type"] == "state":
                        self.state = obj
                    else:
                        self.texts.append(obj)
        except ConnectionClosed as e:
            self.closed = e

    def wait(self, cond, what: str, timeout: float = READ_WAIT_S) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            assert self.closed is None, f"connection closed while waiting for {what}: {self.closed}"
            time.sleep(0.05)

    def close(self) -> None:
        self.ws.close()
        self._thread.join(5)
