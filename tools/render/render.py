"""Renders a route to an mp4: the road camera with the model's path, lane lines and road edges, the lead,
the speed, the engagement state and the alert drawn over it.

    python -m tools.render.render ROUTE -o drive.mp4 [--start S] [--seconds N] [--scale 0.5]

One output frame per road camera frame (roadCameraState + encoderd's road.mp4). A route without video
(a CAN import, a drive recorded without encoderd) renders the same overlays on a dark background at the
model's 20 Hz (or 20 Hz of the route's time when there is no model either), and says so on the picture.
Geometry: liveCalibration's camera angles (the latest before each frame) and the comma2k19 road camera's
intrinsics (common/transformations/camera.py). Encoded with PyAV's libx264.
"""

import os
import sys
from fractions import Fraction

import av
import cv2
import numpy as np

from common.transformations.camera import CameraModel, calibrated_camera, project_car_points
from common.transformations.camera_file import frame_camera
from selfdrive.loggerd.logreader import LogError, LogReader, ToolArgumentParser, finite_float, output_file
from tools.lib.framereader import FrameReader, frame_locations

FPS = 20
STATE_SERVICES = ("carState", "selfdriveState", "modelV2", "liveCalibration", "roadEncodeIdx", "roadCameraState")
PATH_COLOR, LANE_COLOR, EDGE_COLOR, LEAD_COLOR = (0, 200, 255), (255, 255, 255), (0, 0, 255), (0, 0, 255)
ENGAGED_COLOR, DISENGAGED_COLOR = (0, 180, 0), (128, 128, 128)


def _poly(img: np.ndarray, cam: CameraModel, x, y, color, width: int) -> None:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = min(len(x), len(y))
    if n < 2:
        return
    pts = np.stack([x[:n], y[:n], np.zeros(n)], axis=-1)
    keep = pts[:, 0] > 1.0
    px, _ = project_car_points(cam, pts[keep])
    px = px[np.isfinite(px).all(axis=1)]
    if len(px) >= 2:
        scale = img.shape[1] / cam.width
        cv2.polylines(img, [np.round(px * scale).astype(np.int32)], False, color, width, cv2.LINE_AA)


def draw(img: np.ndarray, state: dict, cam: CameraModel, note: str = "") -> None:
    """Draws the overlays of `state` (newest message per service) onto `img` (BGR, any size) in place."""
    md = state.get("modelV2")
    if md is not None:
        for k, line in enumerate(md.laneLines):
            prob = md.laneLineProbs[k] if k < len(md.laneLineProbs) else 1.0
            if prob > 0.3:
                _poly(img, cam, line.x, line.y, LANE_COLOR, 2)
        for edge in md.roadEdges:
            _poly(img, cam, edge.x, edge.y, EDGE_COLOR, 2)
        _poly(img, cam, md.position.x, md.position.y, PATH_COLOR, 4)
        for lead in md.leads:
            if lead.prob > 0.5 and len(lead.x):
                px, _ = project_car_points(cam, np.array([[lead.x[0], lead.y[0] if len(lead.y) else 0.0, 0.0]]))
                if np.isfinite(px).all():
                    u, v = (px[0] * img.shape[1] / cam.width).astype(int)
                    cv2.drawMarker(img, (int(u), int(v)), LEAD_COLOR, cv2.MARKER_TRIANGLE_DOWN, 24, 3)
    h, w = img.shape[:2]
    k = w / CameraModel().width  # text and bars scale with the picture
    font = cv2.FONT_HERSHEY_SIMPLEX
    sd = state.get("selfdriveState")
    engaged = sd is not None and sd.enabled
    cv2.rectangle(img, (0, 0), (w - 1, h - 1), ENGAGED_COLOR if engaged else DISENGAGED_COLOR, max(2, int(8 * k)))
    cs = state.get("carState")
    if cs is not None:
        cv2.putText(img, f"{cs.vEgo * 3.6:5.1f} km/h", (int(20 * k), int(50 * k)), font, 1.4 * k, (255, 255, 255),
                    max(1, int(3 * k)), cv2.LINE_AA)
        cv2.putText(img, f"steer {cs.steeringAngleDeg:+.1f} deg", (int(20 * k), int(90 * k)), font, 0.8 * k,
                    (255, 255, 255), max(1, int(2 * k)), cv2.LINE_AA)
    if sd is not None and (sd.alertText1 or sd.alertText2):
        color = {"critical": (0, 0, 200), "userPrompt": (0, 140, 255)}.get(str(sd.alertStatus), (60, 60, 60))
        cv2.rectangle(img, (0, h - int(110 * k)), (w, h), color, -1)
        for text, y, size in ((sd.alertText1, 65, 1.1), (sd.alertText2, 25, 0.8)):
            cv2.putText(img, text, (int(20 * k), h - int(y * k)), font, size * k, (255, 255, 255), max(1, int(2 * k)),
                        cv2.LINE_AA)
    if note:
        cv2.putText(img, note, (int(20 * k), h - int(130 * k)), font, 0.7 * k, (0, 200, 255), max(1, int(2 * k)),
                    cv2.LINE_AA)


class Renderer:
    def __init__(self, route: str, scale: float = 1.0):
        self.lr = LogReader(route, services=STATE_SERVICES)
        self.events = list(self.lr)
        if not self.events:
            raise LogError(f"{route}: no messages for {', '.join(STATE_SERVICES)}: nothing to render")
        self.route_path = os.path.dirname(os.path.dirname(os.path.abspath(self.lr.files[0])))
        self.frames = frame_locations(self.events)
        self.has_video = any(ev.which() == "roadCameraState" and ev.roadCameraState.frameId in self.frames
                             for ev in self.events)
        self.scale = scale
        self.readers: dict[str, FrameReader] = {}
        self.missing = 0

    def ticks(self, start_s: float, seconds: float | None):
        """(time ns, frameId or None) of each output frame."""
        t0 = self.events[0].logMonoTime
        lo, hi = t0 + int(start_s * 1e9), (None if seconds is None else t0 + int((start_s + seconds) * 1e9))
        if self.has_video:
            src = [(e.logMonoTime, e.roadCameraState.frameId) for e in self.events if e.which() == "roadCameraState"]
        elif any(e.which() == "modelV2" for e in self.events):
            src = [(e.logMonoTime, None) for e in self.events if e.which() == "modelV2"]
        else:
            src = [(t, None) for t in range(t0, self.events[-1].logMonoTime + 1, int(1e9 / FPS))]
        return [(t, f) for t, f in src if t >= lo and (hi is None or t < hi)]

    def background(self, frame_id: int | None, cam: CameraModel) -> tuple[np.ndarray, str]:
        size = (int(cam.width * self.scale) // 2 * 2, int(cam.height * self.scale) // 2 * 2)
        loc = self.frames.get(frame_id) if frame_id is not None else None
        if loc is not None:
            reader = self.readers.setdefault(loc.path, FrameReader(os.path.join(self.route_path, loc.path)))
            try:
                bgr = cv2.cvtColor(reader.get(loc.position), cv2.COLOR_YUV2BGR_NV12)
                return cv2.resize(bgr, size, interpolation=cv2.INTER_AREA), ""
            except (IndexError, OSError, ValueError, av.error.FFmpegError):
                self.missing += 1
                return np.full((size[1], size[0], 3), 30, np.uint8), f"frame {frame_id} unreadable"
        return np.full((size[1], size[0], 3), 30, np.uint8), "no camera video in this route"

    def render(self, out: str, start_s: float = 0.0, seconds: float | None = None) -> int:
        """Writes the mp4; returns the number of frames."""
        ticks = self.ticks(start_s, seconds)
        if not ticks:
            raise LogError("no frames in the selected time")
        container = av.open(out, "w")
        stream, n, k, state = None, 0, 0, {}
        try:
            for t, frame_id in ticks:
                while k < len(self.events) and self.events[k].logMonoTime <= t:
                    state[self.events[k].which()] = getattr(self.events[k], self.events[k].which())
                    k += 1
                cal = state.get("liveCalibration")
                # the camera that took this frame, as the route recorded it (older routes: the default camera)
                base = frame_camera(state["roadCameraState"]) if "roadCameraState" in state else CameraModel()
                cam = calibrated_camera(cal.rpyCalib, cal.height[0] if len(cal.height) else None, base) \
                    if cal is not None else base
                img, note = self.background(frame_id, cam)
                draw(img, state, cam, note)
                if stream is None:
                    stream = container.add_stream("libx264", rate=FPS)
                    stream.width, stream.height, stream.pix_fmt = img.shape[1], img.shape[0], "yuv420p"
                    stream.codec_context.time_base = Fraction(1, FPS)
                    stream.options = {"preset": "veryfast", "crf": "23"}
                vf = av.VideoFrame.from_ndarray(img, format="bgr24")
                vf.pts = n
                for packet in stream.encode(vf):
                    container.mux(packet)
                n += 1
            for packet in stream.encode(None):
                container.mux(packet)
        finally:
            container.close()
            for r in self.readers.values():
                r.close()
        return n


def main(argv: list[str] | None = None) -> int:
    """Exit status 0: the mp4 is written; 2: refused (a bad source, -o or time range), one line on stderr; 1: the
    mp4 could not be written."""
    ap = ToolArgumentParser(prog="python -m tools.render.render", description=__doc__.splitlines()[0])
    ap.add_argument("route", help="route name, name/segments, folder or log file")
    ap.add_argument("-o", "--out", type=output_file(".mp4"), default="render.mp4",
                    help="mp4 to write, in a folder that exists (default render.mp4)")
    ap.add_argument("--start", type=finite_float, default=0.0, help="seconds into the route")
    ap.add_argument("--seconds", type=finite_float, default=None, help="how much to render (default: to the end)")
    ap.add_argument("--scale", type=finite_float, default=1.0, help="output size relative to the camera (default 1)")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    if not 0.1 <= args.scale <= 2.0:
        ap.error("--scale must be 0.1 to 2")
    if args.seconds is not None and not args.seconds > 0:
        ap.error("--seconds must be positive")
    try:
        r = Renderer(args.route, args.scale)
        n = r.render(args.out, args.start, args.seconds)
    except LogError as e:
        print(f"render: {e}", file=sys.stderr)
        return 2
    except (OSError, av.error.FFmpegError) as e:  # the disk, not the input: a full disk, a folder gone meanwhile
        print(f"render: cannot write {args.out}: {e}", file=sys.stderr)
        return 1
    for path, what in r.lr.problems:
        print(f"render: problem in {path}: {what}", file=sys.stderr)
    video = "camera video" if r.has_video else "no camera video (overlays on a dark background)"
    missing = f", {r.missing} frames unreadable" if r.missing else ""
    print(f"wrote {args.out}: {n} frames at {FPS} fps, {video}{missing}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
