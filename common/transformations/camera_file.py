"""A camera file: one real camera's intrinsics and lens distortion, as `roadpilot calibrate-camera` writes them and
`--camera-params FILE` reads them. JSON, so a user can read and check it:

    {"format": "roadpilot-camera/1", "width": 1280, "height": 720, "fx": 1156.9, "fy": 1152.0,
     "cx": 665.9, "cy": 388.1, "distortion": [-0.237, -0.085, -0.0008, 0.0001, 0.106],
     "rms_px": 0.41, "how": "chessboard: 17 of 20 photos used"}

`distortion` is OpenCV's (k1, k2, p1, p2, k3). `rms_px` and `how` say where the numbers came from; they are kept for
the reader, not used. A file that is not such a camera is refused with the reason (CameraFileError)."""

import json
import math
from pathlib import Path

from common.transformations.camera import CameraModel

FORMAT = "roadpilot-camera/1"
MAX_SIDE = 16384


class CameraFileError(ValueError):
    """The file is not a usable camera: the message says why, in one line."""


def camera_to_dict(cam: CameraModel, rms_px: float | None = None, how: str = "") -> dict:
    out = {"format": FORMAT, "width": cam.width, "height": cam.height, "fx": round(cam.fx, 4), "fy": round(cam.fy, 4),
           "cx": round(cam.cx, 4), "cy": round(cam.cy, 4), "distortion": [round(float(k), 6) for k in cam.distortion]}
    if rms_px is not None:
        out["rms_px"] = round(float(rms_px), 4)
    if how:
        out["how"] = how
    return out


def camera_from_dict(d: object) -> CameraModel:
    """The camera a camera file's JSON describes; CameraFileError when it does not describe a usable one."""
    if not isinstance(d, dict):
        raise CameraFileError("not a camera file (a JSON object is expected)")
    if d.get("format") != FORMAT:
        raise CameraFileError(f"not a camera file: format is {d.get('format')!r}, expected {FORMAT!r}")
    missing = [k for k in ("width", "height", "fx", "fy", "cx", "cy", "distortion") if k not in d]
    if missing:
        raise CameraFileError(f"camera file lacks {', '.join(missing)}")
    try:
        w, h = int(d["width"]), int(d["height"])
        fx, fy, cx, cy = (float(d[k]) for k in ("fx", "fy", "cx", "cy"))
        dist = tuple(float(k) for k in d["distortion"])
    except (TypeError, ValueError) as e:
        raise CameraFileError(f"camera file has a value that is not a number: {e}") from None
    if not (16 <= w <= MAX_SIDE and 16 <= h <= MAX_SIDE) or w != d["width"] or h != d["height"]:
        raise CameraFileError(f"camera file's size {d['width']}x{d['height']} is not a picture size")
    if not all(math.isfinite(v) for v in (fx, fy, cx, cy, *dist)):
        raise CameraFileError("camera file has a value that is not finite")
    if not (0.1 * w <= fx <= 20 * w and 0.5 * fx <= fy <= 2.0 * fx):
        raise CameraFileError(f"camera file's focal lengths fx {fx:g}, fy {fy:g} px do not fit a {w}x{h} camera")
    if not (0.0 < cx < w and 0.0 < cy < h):
        raise CameraFileError(f"camera file's principal point ({cx:g}, {cy:g}) lies outside the {w}x{h} picture")
    if len(dist) not in (0, 4, 5) or any(abs(k) > 10.0 for k in dist):
        raise CameraFileError(f"camera file's distortion {list(dist)} is not OpenCV's k1, k2, p1, p2[, k3]")
    return CameraModel(w, h, fx, focal_y=fy, principal=(cx, cy), dist=dist)


def load_camera_file(path: str | Path) -> CameraModel:
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise CameraFileError(f"cannot read camera file {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise CameraFileError(f"camera file {path} is not text") from None
    try:
        d = json.loads(text)
    except ValueError as e:
        raise CameraFileError(f"camera file {path} is not JSON: {e}") from None
    try:
        return camera_from_dict(d)
    except CameraFileError as e:
        raise CameraFileError(f"{path}: {e}") from None


def save_camera_file(path: str | Path, cam: CameraModel, rms_px: float | None = None, how: str = "") -> None:
    """Written whole or not at all (a temporary file renamed over it)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(camera_to_dict(cam, rms_px, how), indent=2) + "\n")
    tmp.replace(path)


# --- the camera as roadCameraState (FrameData) carries it --------------------------------------------------------
def fill_frame_camera(fd, cam: CameraModel, camera_from: str) -> None:
    """Writes `cam` (the camera of the frames as served) into a FrameData builder."""
    fd.intrinsics = [float(cam.fx), float(cam.fy), float(cam.cx), float(cam.cy)]
    fd.distortion = [float(k) for k in cam.distortion]
    fd.cameraFrom = camera_from


def frame_camera(fd, width: int = 0, height: int = 0) -> CameraModel:
    """The camera of frames that a FrameData describes. One that says nothing (routes recorded before cameras were
    described) or nonsense is the comma2k19 road camera scaled to the frames' width: what camerad assumed then."""
    w, h = int(width or fd.width or CameraModel.width), int(height or fd.height or CameraModel.height)
    try:
        k = [float(v) for v in fd.intrinsics]
        dist = tuple(float(v) for v in fd.distortion)
        if len(k) == 4:
            return camera_from_dict({"format": FORMAT, "width": w, "height": h, "fx": k[0], "fy": k[1], "cx": k[2],
                                     "cy": k[3], "distortion": list(dist)})
    except (CameraFileError, AttributeError, TypeError, ValueError):
        pass
    return default_camera(w, h)


def default_camera(width: int, height: int) -> CameraModel:
    """What frames that came without a camera were taken to be: the comma2k19 road camera scaled to their width."""
    base = CameraModel()
    return CameraModel(width, height, base.focal * width / base.width)
