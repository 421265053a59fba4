"""modelV2 -> what the page draws, in camera pixels: the one place the UI projects anything.

The page gets polygons and points in the camera's full-resolution pixel coordinates (1164 x 874 for the
comma2k19 camera) and only scales them with the picture, so the overlay and the stack share one camera
model (common/transformations/camera.py) and the page holds no geometry.

Shapes are ribbons on the road: the path is a band PATH_HALF_WIDTH to each side of the planned positions,
lane lines and road edges narrow bands around their points. Points closer than NEAR_M to the camera plane
(or behind it) are cut, as are non-finite ones, so bad model output draws less, never garbage.
"""

import math

import numpy as np

from common.transformations.camera import CameraModel, calibrated_camera, project_car_points

PATH_HALF_WIDTH = 0.9    # m, about half a car
LANE_HALF_WIDTH = 0.06   # m, a painted line is ~12 cm wide
EDGE_HALF_WIDTH = 0.10
NEAR_M = 1.0             # m of depth; nearer points are far off the bottom of the picture anyway
MAX_X = 120.0            # m ahead; beyond this everything sits on the horizon
LEAD_MIN_PROB = 0.5
DECIMALS = 1
ROAD_CAMERA = CameraModel()   # until roadCameraState says which camera took the frames: the comma2k19 road camera


def _xyz(d) -> np.ndarray:
    """An XYZTData reader (or anything with x, y, z lists) as finite (n, 3) points inside MAX_X."""
    x, y, z = (np.asarray(list(getattr(d, k, [])), dtype=float) for k in ("x", "y", "z"))
    n = min(len(x), len(y))
    if n == 0:
        return np.zeros((0, 3))
    z = z[:n] if len(z) >= n else np.zeros(n)
    pts = np.stack((x[:n], y[:n], z), axis=-1)
    keep = np.isfinite(pts).all(axis=1) & (pts[:, 0] <= MAX_X)
    return pts[keep]


def _ribbon(pts: np.ndarray, half_width: float) -> np.ndarray:
    """A band of `half_width` either side of a polyline on the road: its outline, left side out, right back."""
    if len(pts) < 2:
        return np.zeros((0, 3))
    d = np.gradient(pts[:, :2], axis=0)
    norm = np.hypot(d[:, 0], d[:, 1])
    norm[norm < 1e-9] = 1.0
    left = np.stack((-d[:, 1] / norm, d[:, 0] / norm, np.zeros(len(pts))), axis=-1) * half_width
    return np.concatenate((pts + left, (pts - left)[::-1]))


def _pixels(cam: CameraModel, pts: np.ndarray) -> list[list[float]]:
    if len(pts) == 0:
        return []
    px, depth = project_car_points(cam, pts)
    keep = (depth >= NEAR_M) & np.isfinite(px).all(axis=1)
    return np.round(px[keep], DECIMALS).tolist()


def _band(cam: CameraModel, pts: np.ndarray, half_width: float) -> list[list[float]]:
    # cut near points before building the outline, so both sides of the band are cut at the same distance
    pts = pts[pts[:, 0] >= NEAR_M] if len(pts) else pts
    return _pixels(cam, _ribbon(pts, half_width))


def _prob(probs, i: int) -> float:
    p = float(probs[i]) if i < len(probs) else 0.0
    return min(max(p, 0.0), 1.0) if math.isfinite(p) else 0.0


def build_overlay(model, rpy_calib=(0.0, 0.0, 0.0), height: float | None = None,
                  base: CameraModel = ROAD_CAMERA) -> dict:
    """modelV2 reader + liveCalibration (rpy, height) -> the overlay dict the page draws (JSON-ready)."""
    cam = calibrated_camera(rpy_calib, height, base)
    probs = list(model.laneLineProbs)
    lanes = [{"pts": _band(cam, _xyz(ll), LANE_HALF_WIDTH), "prob": _prob(probs, i)}
             for i, ll in enumerate(model.laneLines)]
    edges = [{"pts": _band(cam, _xyz(e), EDGE_HALF_WIDTH)} for e in model.roadEdges]
    return {"width": cam.width, "height": cam.height, "path": _band(cam, _xyz(model.position), PATH_HALF_WIDTH),
            "lanes": lanes, "edges": edges, "lead": _lead(cam, model.leads)}


def _lead(cam: CameraModel, leads) -> dict | None:
    """The most likely lead above LEAD_MIN_PROB, as the pixel of its spot on the road and its distance."""
    best = None
    for ld in leads:
        if len(ld.x) == 0 or len(ld.y) == 0 or not LEAD_MIN_PROB <= ld.prob <= 1.0:
            continue
        if best is None or ld.prob > best.prob:
            best = ld
    if best is None:
        return None
    x, y, v = float(best.x[0]), float(best.y[0]), float(best.v[0]) if len(best.v) else float("nan")
    px = _pixels(cam, np.array([[x, y, 0.0]])) if math.isfinite(x) and math.isfinite(y) else []
    if not px:
        return None
    return {"u": px[0][0], "v": px[0][1], "dist": round(x, 1), "speed": round(v, 2) if math.isfinite(v) else None,
            "prob": round(float(best.prob), 2)}
