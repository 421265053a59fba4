"""camerad: one camera source -> NV12 frames on VisionIPC (road stream) + `roadCameraState`.

    python -m selfdrive.camerad.camerad --source webcam --device /dev/video0
    python -m selfdrive.camerad.camerad --source video --path drive.mp4 [--pace consumed] [--loop]
    python -m selfdrive.camerad.camerad --source sim          # frames pushed by the simulator bridge

Pacing (`--pace`):
  realtime  (webcam, video) 20 Hz slots on the wall clock: slot k is due k * 50 ms after start. A slot with
            no new frame (a late loop, a slow camera) is skipped: the frame ids jump, consumers see the
            gap, and `framesDropped` counts it.
  consumed  (video) lockstep: frame k is served, then camerad waits until the consumer service
            (`--consumer`, default modelV2) publishes frameId >= k, then serves k + 1. Frame k is sent
            again every RESEND_S while unanswered, so a consumer that connects late still gets it (a
            consumer must ignore a frame id it has seen). Without a consumer it does not advance.
  pushed    (sim, always) each frame is served as the bridge pushes it, with the bridge's ids and clock.

The camera (intrinsics, lens distortion) is what roadCameraState says for every frame, and what modeld, the UI and
tools.render warp and draw with: the simulator's own (it comes with each frame), else a camera file (`--camera-params
FILE`, from `roadpilot calibrate-camera`), else a stated horizontal field of view (`--fov DEG`), else an assumed one
(ASSUMED_FOV_DEG, said in the log and in roadCameraState.cameraFrom: lines drawn with it are only as right as it).
Frames are served at the source's own size (an odd width or height loses its last column or row: NV12 needs even
ones), or `--width` x `--height` when given: pictures are then scaled to cover that and centre-cropped (nv12.py), and
the camera served is the one that sees the crop. Health: a source that delivers nothing for STALL_S keeps
`roadCameraState` going at 20 Hz with sourceOk=False and valid=False (frame id = the last served), so the
stack sees the camera is gone. A source that cannot start (missing device or file, undecodable file) is an
error at start: a message and exit status 1, never a black stream.

Defaults come from the environment, read once here: ROADPILOT_CAMERA_SOURCE, ROADPILOT_CAMERA_DEVICE,
ROADPILOT_CAMERA_VIDEO, ROADPILOT_CAMERA_LOOP, ROADPILOT_CAMERA_PARAMS, ROADPILOT_CAMERA_FOV; without them the source
follows the manager's mode (device: webcam, else sim).
"""

import argparse
import os
import signal
import time
from dataclasses import dataclass

import numpy as np

from cereal import messaging
from cereal.visionipc import VisionIpcServer, VisionStreamType
from common.params import Params
from common.realtime import DT_MDL, PRIO_MDL, Ratekeeper, set_realtime_priority
from common.swaglog import cloudlog, cloudlog_bind, log_due
from common.transformations.camera import CameraModel
from common.transformations.camera_file import CameraFileError, fill_frame_camera, load_camera_file
from selfdrive.camerad.nv12 import check_size, cover_crop_camera, nv12_shape, to_nv12
from selfdrive.camerad.sources import Frame, FrameSource, SourceError

PUBLISHES = ("roadCameraState",)
SOURCES = ("webcam", "video", "sim")
PACES = {"webcam": ("realtime",), "video": ("realtime", "consumed"), "sim": ("pushed",)}
CONSUMERS = ("modelV2", "roadEncodeIdx")   # services that echo the frameId they processed
STALL_S = 0.25        # 5 slots without a frame: the source has stopped delivering
RESEND_S = 0.5        # consumed pace: resend an unanswered frame this often
NUM_BUFFERS = 4       # 200 ms of frames for slow readers
WIDTH, HEIGHT = CameraModel.width, CameraModel.height  # served when the source does not say its size
ASSUMED_FOV_DEG = round(CameraModel().hfov_deg, 1)  # without a camera file or --fov: comma2k19's road camera, 65.2


@dataclass(frozen=True)
class CameraConfig:
    source: str
    device: str = "/dev/video0"
    path: str | None = None
    pace: str = "realtime"
    loop: bool = False
    width: int = 0                # 0: the source's own size
    height: int = 0
    consumer: str = "modelV2"
    camera_params: str | None = None  # a camera file
    fov: float | None = None          # or a stated horizontal field of view, degrees


def served_size(cfg: CameraConfig, native: tuple[int, int] | None) -> tuple[int, int]:
    """What camerad serves: --width x --height, else the source's size made even, else WIDTH x HEIGHT."""
    if cfg.width and cfg.height:
        return cfg.width, cfg.height
    if native is None or min(native) < 2:
        return WIDTH, HEIGHT
    return native[0] - native[0] % 2, native[1] - native[1] % 2


def source_camera(cfg: CameraConfig, native: tuple[int, int]) -> tuple[CameraModel, str]:
    """The source's camera at its own size, and where that comes from. ValueError when a camera file cannot be
    this source's camera (another aspect ratio)."""
    w, h = native
    if cfg.camera_params:
        cam = load_camera_file(cfg.camera_params)
        try:
            return cam.scaled(w, h), f"file {os.path.basename(cfg.camera_params)}"
        except ValueError as e:
            raise ValueError(f"camera file {cfg.camera_params}: {e}") from None
    if cfg.fov is not None:
        return CameraModel.from_fov(w, h, cfg.fov), f"fov {cfg.fov:g}"
    return CameraModel.from_fov(w, h, ASSUMED_FOV_DEG), f"assumed fov {ASSUMED_FOV_DEG:g}"


def make_source(cfg: CameraConfig) -> FrameSource:
    # imported here: each source pulls in its own library (OpenCV's capture, PyAV, ZMQ) only when used
    if cfg.source == "webcam":
        from selfdrive.camerad.sources.webcam import WebcamSource
        return WebcamSource(cfg.device)
    if cfg.source == "video":
        from selfdrive.camerad.sources.video import VideoSource
        return VideoSource(cfg.path, cfg.loop)
    from selfdrive.camerad.sources.sim import SimSource
    return SimSource(cfg.width or WIDTH, cfg.height or HEIGHT)


class Camerad:
    def __init__(self, cfg: CameraConfig, source: FrameSource, camera: tuple[CameraModel, str] | None = None):
        """`camera`: the source's camera at its own size and where it comes from (None: WIDTH x HEIGHT frames of the
        assumed camera, until frames bring their own, as the sim's do)."""
        w, h = served_size(cfg, getattr(source, "native_size", None))
        self.cfg, self.source, self.width, self.height = cfg, source, w, h
        assumed = (CameraModel.from_fov(w, h, ASSUMED_FOV_DEG), f"assumed fov {ASSUMED_FOV_DEG:g}")
        cam, self.camera_from = camera or assumed
        self.camera = cover_crop_camera(cam, w, h)
        self.server = VisionIpcServer(VisionStreamType.ROAD, w, h, num_buffers=NUM_BUFFERS)
        self.pm = messaging.PubMaster(list(PUBLISHES))
        self.nv12 = np.empty(nv12_shape(w, h), dtype=np.uint8)
        self.frame_id = 0
        self.served = 0
        self.skipped_slots = 0    # realtime slots that got no frame
        self.bad_frames = 0       # pictures that could not be converted
        self.stalled = False
        self.stop = False
        self.begin(time.monotonic_ns())

    def begin(self, start_ns: int) -> None:
        """Slot 0 is now (call it once the source is open, so opening a file costs no slots)."""
        self.start = start_ns / 1e9
        self.source.clock_start_ns = start_ns
        self.last_frame_t = self.start  # a source gets STALL_S from the start before it counts as stalled

    def serve(self, frame: Frame, frame_id: int) -> bool:
        try:
            img = to_nv12(frame.image, self.width, self.height, self.nv12)
        except ValueError as e:
            self.bad_frames += 1
            if log_due(self.bad_frames):
                cloudlog.warning("frame dropped", extra={"error": str(e), "bad_frames": self.bad_frames})
            return False
        self.frame_id, self.sof, self.eof = frame_id, frame.sof_ns, frame.eof_ns
        if frame.camera is not None and frame.camera != self.camera:  # the simulator's own camera, exact
            self.camera, self.camera_from = frame.camera, self.source.name
        self.server.send(img, frame_id, frame.sof_ns, frame.eof_ns)
        self.publish_state(True)
        self.served += 1
        self.last_frame_t = time.monotonic()
        if self.stalled:
            self.stalled = False
            cloudlog.info("camera source delivers again", extra={"source": self.source.name, "frame_id": frame_id})
        return True

    def resend(self) -> None:
        self.server.send(self.nv12, self.frame_id, self.sof, self.eof)
        self.publish_state(True)

    def no_frame(self, now: float) -> None:
        """A moment without a new frame: once the source is quiet for STALL_S, say so (every call, at ~20 Hz)."""
        if now - self.last_frame_t < STALL_S:
            return
        if not self.stalled:
            self.stalled = True
            cloudlog.error("camera source stopped delivering", extra={"source": self.source.name,
                                                                      "ended": self.source.ended,
                                                                      "last_frame_id": self.frame_id})
        self.publish_state(False)

    def publish_state(self, ok: bool) -> None:
        msg = messaging.new_message("roadCameraState", valid=ok)
        cs = msg.roadCameraState
        cs.frameId = self.frame_id & 0xFFFFFFFF
        if ok:
            cs.timestampSof, cs.timestampEof = self.sof, self.eof
        cs.width, cs.height = self.width, self.height
        fill_frame_camera(cs, self.camera, self.camera_from)
        cs.source = self.source.name
        cs.sourceOk = ok
        cs.framesDropped = min(self.skipped_slots + self.bad_frames + self.source.dropped, 0xFFFFFFFF)
        self.pm.send("roadCameraState", msg)

    def run_realtime(self) -> None:
        rk = Ratekeeper(1.0 / DT_MDL, print_delay_threshold=DT_MDL, wall=True)  # a real source: real time
        rk.monitor_time()   # starts its schedule now (slot 0): each keep_time() below then ends one slot
        last_slot = -1
        while not self.stop:
            now = time.monotonic()
            slot = max(last_slot + 1, round((now - self.start) / DT_MDL))
            frame = self.source.read(slot, DT_MDL / 2)  # a live camera may be a little late for its slot
            if frame is not None and self.serve(frame, slot if frame.frame_id is None else frame.frame_id):
                self.skipped_slots += slot - last_slot - 1
                last_slot = slot
            else:
                self.no_frame(time.monotonic())
            rk.keep_time()

    def run_consumed(self) -> None:
        sm = messaging.SubMaster([self.cfg.consumer])
        slot = 0
        while not self.stop:
            frame = self.source.read(slot, 0.0)
            if frame is None:   # the video ended: report it at 20 Hz until stopped
                self.no_frame(time.monotonic())
                time.sleep(DT_MDL)
                continue
            if not self.serve(frame, slot):
                slot += 1
                continue
            resend_at = time.monotonic() + RESEND_S
            while not self.stop:
                sm.update(int(DT_MDL * 1000))
                if sm.updated[self.cfg.consumer] and sm[self.cfg.consumer].frameId >= slot:
                    break
                if time.monotonic() >= resend_at:
                    self.resend()
                    resend_at += RESEND_S
            slot += 1
        sm.close()

    def run_pushed(self) -> None:
        while not self.stop:
            frame = self.source.read(-1, DT_MDL)
            if frame is None or not self.serve(frame, frame.frame_id):
                self.no_frame(time.monotonic())

    def run(self) -> None:
        try:
            {"realtime": self.run_realtime, "consumed": self.run_consumed, "pushed": self.run_pushed}[self.cfg.pace]()
        finally:
            cloudlog.info("camerad exiting", extra={"served": self.served, "skipped_slots": self.skipped_slots,
                                                    "bad_frames": self.bad_frames, "source_drops": self.source.dropped})
            self.source.close()
            self.server.close()
            self.pm.close()


def default_source(env: dict) -> str:
    if env.get("ROADPILOT_CAMERA_SOURCE"):
        return env["ROADPILOT_CAMERA_SOURCE"]
    return "webcam" if Params().get("ManagerMode") == "device" else "sim"


def parse_args(argv: list[str] | None = None, env: dict | None = None) -> CameraConfig:
    env = dict(os.environ) if env is None else env
    p = argparse.ArgumentParser(description="serves camera frames over VisionIPC and publishes roadCameraState")
    p.add_argument("--source", choices=SOURCES, default=None, help="default: $ROADPILOT_CAMERA_SOURCE, else by mode")
    p.add_argument("--device", default=env.get("ROADPILOT_CAMERA_DEVICE", "/dev/video0"), help="webcam device")
    p.add_argument("--path", default=env.get("ROADPILOT_CAMERA_VIDEO"), help="video file (--source video)")
    p.add_argument("--pace", choices=("realtime", "consumed", "pushed"), default=None,
                   help="realtime (webcam, video; default), consumed (video lockstep), pushed (sim, the only one)")
    p.add_argument("--loop", action=argparse.BooleanOptionalAction, default=env.get("ROADPILOT_CAMERA_LOOP") == "1",
                   help="restart a video at its end (default: $ROADPILOT_CAMERA_LOOP=1)")
    p.add_argument("--width", type=int, default=0, help=f"served width (default: the source's, else {WIDTH})")
    p.add_argument("--height", type=int, default=0, help=f"served height (default: the source's, else {HEIGHT})")
    p.add_argument("--camera-params", metavar="FILE", default=env.get("ROADPILOT_CAMERA_PARAMS") or None,
                   help="the camera file from `roadpilot calibrate-camera` (default: $ROADPILOT_CAMERA_PARAMS)")
    p.add_argument("--fov", type=float, default=None,
                   help=f"without a camera file: the camera's horizontal field of view in degrees (default: "
                        f"$ROADPILOT_CAMERA_FOV, else {ASSUMED_FOV_DEG:g} assumed)")
    p.add_argument("--consumer", choices=CONSUMERS, default="modelV2", help="--pace consumed waits for its frameId")
    a = p.parse_args(argv)
    source = a.source or default_source(env)
    if source not in SOURCES:
        p.error(f"ROADPILOT_CAMERA_SOURCE={source!r}: choose one of {', '.join(SOURCES)}")
    pace = a.pace or PACES[source][0]
    if pace not in PACES[source]:
        p.error(f"--source {source} runs with --pace {' or '.join(PACES[source])}, not {pace}")
    if source == "video" and not a.path:
        p.error("--source video needs --path FILE (or $ROADPILOT_CAMERA_VIDEO)")
    if bool(a.width) != bool(a.height):
        p.error("give --width and --height together")
    try:
        if a.width:
            check_size(a.width, a.height)
        fov = a.fov if a.fov is not None else float(env["ROADPILOT_CAMERA_FOV"]) if env.get("ROADPILOT_CAMERA_FOV") \
            else None
        if fov is not None:
            CameraModel.from_fov(WIDTH, HEIGHT, fov)  # checks its range
        if a.camera_params:
            load_camera_file(a.camera_params)
    except (ValueError, CameraFileError) as e:
        p.error(str(e))
    if a.camera_params and fov is not None:
        p.error("give a camera file or a field of view, not both")
    return CameraConfig(source, a.device, a.path, pace, a.loop, a.width, a.height, a.consumer, a.camera_params, fov)


def main(argv: list[str] | None = None) -> None:
    cloudlog_bind(name="camerad")
    cfg = parse_args(argv)
    set_realtime_priority(PRIO_MDL)
    source = make_source(cfg)
    try:
        source.open()  # first: its size is the frames' size (a second camerad of this prefix stops at the server)
        native = getattr(source, "native_size", None)
        camera = source_camera(cfg, native) if native is not None else None
    except (SourceError, ValueError) as e:
        cloudlog.error("camera source cannot start", extra={"source": cfg.source, "error": str(e)})
        source.close()
        raise SystemExit(f"camerad: {e}") from None
    d = Camerad(cfg, source, camera)

    def on_signal(signum, frame):
        d.stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    cloudlog.info("camerad started", extra={"source": cfg.source, "pace": cfg.pace, "width": d.width,
                                            "height": d.height, "camera": d.camera.describe(),
                                            "camera_from": d.camera_from})
    print(f"camerad: {cfg.source} {d.width}x{d.height}; camera ({d.camera_from}): {d.camera.describe()}", flush=True)
    d.begin(time.monotonic_ns())
    d.run()


if __name__ == "__main__":
    main()
