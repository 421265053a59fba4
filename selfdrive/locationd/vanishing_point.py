"""Where the road camera looks, from the picture alone: the vanishing point of the lines painted along the road.

Lines along a straight road (lane lines, edges, guard rails) are parallel, so in the picture they all meet in one
point: the direction of the road. Where that point lies says the camera's pitch and yaw relative to the road (and so
to a car driving along it), whatever the driving model makes of the picture: this is calibrationd's measurement on
real roads, where the model's path may bend on a straight road (issue 17: the model's path alone passed 12 of 177
frames of a real dash-cam clip).

Per frame (`vanishing_point`):
  1. the road below the horizon (as the calibration in use places it) is searched at SEARCH_W pixels wide: Canny
     edges, then straight segments (OpenCV's probabilistic Hough);
  2. the segments' ends are undistorted (the camera's lens) into normalised coordinates, where a line on the road
     is straight; segments that lean like neither a left nor a right line are dropped;
  3. RANSAC over pairs of a left- and a right-leaning segment: the point most segment lines pass within INLIER of,
     then refined by least squares over those (weighted by length);
  4. it is refused unless both sides hold enough segment length, and the near and the far halves of the road agree
     on the point (a curve bends the lines: near and far segments meet elsewhere).
The point gives the mount angles (`mount_angles`): pitch = atan(-y), yaw = atan(x cos pitch) (pitch > 0 looks down,
yaw > 0 looks left, the conventions of common/transformations/camera.py). Roll is not measured.
"""

import math
from dataclasses import dataclass

import cv2
import numpy as np

from common.transformations.camera import CameraModel

SEARCH_W = 480               # px: frames are searched at this width
HORIZON_MARGIN = 0.02        # of the height: the search starts this far below the assumed horizon
BOTTOM = 0.95                # of the height: the search ends here (a hood may fill the bottom)
MIN_LEAN, MAX_LEAN = 0.25, 4.0   # |dx/dy| of a road line in normalised coordinates
INLIER = 0.004               # normalised (about 0.23 deg): a segment line passing this close counts for a point
MIN_SIDE = 0.15              # normalised length of segments on each side (left- and right-leaning)
STRAIGHT = 0.004             # normalised: the near and far halves' points may differ this much
RANSAC_PAIRS = 60


@dataclass(frozen=True)
class VanishingPoint:
    x: float                 # normalised image coordinates (undistorted): x right, y down
    y: float
    support: float           # normalised length of the segments that agree on it
    rms: float               # their lines' rms distance from it


def mount_angles(vp: VanishingPoint) -> tuple[float, float]:
    """(pitch, yaw) of a camera whose picture has the road's direction at `vp` (see the module docstring)."""
    pitch = math.atan(-vp.y)
    return pitch, math.atan(vp.x * math.cos(pitch))


def segments(y_plane: np.ndarray, cam: CameraModel, horizon_y: float) -> np.ndarray:
    """(n, 4) segment ends (x0, y0, x1, y1) in undistorted normalised coordinates, found below the image row where the
    normalised y is `horizon_y` (the horizon as the calibration in use places it)."""
    h, w = y_plane.shape
    scale = SEARCH_W / w
    small = cv2.resize(y_plane, (SEARCH_W, round(h * scale)), interpolation=cv2.INTER_AREA)
    sh = small.shape[0]
    top_px = cam.cy + cam.fy * horizon_y   # where the lens puts the horizon's centre, near enough at the centre
    top = int(np.clip((top_px / h + HORIZON_MARGIN) * sh, 0, sh - 8))
    bottom = int(BOTTOM * sh)
    if bottom - top < 16:
        return np.zeros((0, 4))
    roi = cv2.GaussianBlur(small[top:bottom], (5, 5), 0)
    edges = cv2.Canny(roi, 40, 120)
    found = cv2.HoughLinesP(edges, 1, np.pi / 180, threshold=18, minLineLength=int(0.035 * SEARCH_W),
                            maxLineGap=int(0.015 * SEARCH_W))
    if found is None:
        return np.zeros((0, 4))
    ends = found.reshape(-1, 2, 2).astype(np.float64)
    ends[..., 1] += top
    ends /= scale
    pts = cv2.undistortPoints(ends.reshape(-1, 1, 2), cam.intrinsics, cam.distortion).reshape(-1, 4)
    dx, dy = pts[:, 2] - pts[:, 0], pts[:, 3] - pts[:, 1]
    lean = np.abs(dx) / np.maximum(np.abs(dy), 1e-9)
    return pts[(lean > MIN_LEAN) & (lean < MAX_LEAN)]


def _lines(seg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit normals (n, 2), offsets (n,) (normal . p = offset on the line) and lengths (n,) of segments."""
    d = seg[:, 2:] - seg[:, :2]
    length = np.hypot(d[:, 0], d[:, 1])
    normal = np.stack([-d[:, 1], d[:, 0]], -1) / np.maximum(length, 1e-12)[:, None]
    return normal, np.sum(normal * seg[:, :2], 1), length


def _solve(normal: np.ndarray, offset: np.ndarray, weight: np.ndarray) -> np.ndarray | None:
    a = (normal * weight[:, None]).T @ normal
    if abs(np.linalg.det(a)) < 1e-12:
        return None
    return np.linalg.solve(a, (normal * weight[:, None]).T @ offset)


def _fit(seg: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    """(point, inlier mask) of the segments' common point: RANSAC over left/right pairs, then least squares."""
    normal, offset, length = _lines(seg)
    leans_left = (seg[:, 2] - seg[:, 0]) * (seg[:, 3] - seg[:, 1]) < 0   # x falls as y grows: a left line
    left, right = np.flatnonzero(leans_left), np.flatnonzero(~leans_left)
    if len(left) == 0 or len(right) == 0:
        return None
    best, best_score = None, 0.0
    p_left, p_right = length[left] / length[left].sum(), length[right] / length[right].sum()
    for _ in range(RANSAC_PAIRS):
        i, j = rng.choice(left, p=p_left), rng.choice(right, p=p_right)
        p = _solve(normal[[i, j]], offset[[i, j]], np.ones(2))
        if p is None:
            continue
        inl = np.abs(normal @ p - offset) < INLIER
        score = length[inl].sum()
        if score > best_score:
            best, best_score = inl, score
    if best is None:
        return None
    p = _solve(normal[best], offset[best], length[best])
    if p is None:
        return None
    inl = np.abs(normal @ p - offset) < INLIER
    p = _solve(normal[inl], offset[inl], length[inl])
    return (p, inl) if p is not None else None


def vanishing_point(y_plane: np.ndarray, cam: CameraModel, horizon_y: float = 0.0,
                    seed: int = 0) -> VanishingPoint | None:
    """The road's vanishing point in this luma plane (`cam`'s picture), or None when the picture does not show it
    clearly: too few lines on either side, or a curve (the near and far halves disagree)."""
    seg = segments(y_plane, cam, horizon_y)
    if len(seg) < 2:
        return None
    rng = np.random.default_rng(seed)  # the same frame always gives the same answer
    fit = _fit(seg, rng)
    if fit is None:
        return None
    p, inl = fit
    seg_in = seg[inl]
    normal, offset, length = _lines(seg_in)
    leans_left = (seg_in[:, 2] - seg_in[:, 0]) * (seg_in[:, 3] - seg_in[:, 1]) < 0
    if min(length[leans_left].sum(), length[~leans_left].sum()) < MIN_SIDE:
        return None
    # straight: the near and the far half of the segments, each on its own, meet where all of them do
    mid = np.median((seg_in[:, 1] + seg_in[:, 3]) / 2)
    near = (seg_in[:, 1] + seg_in[:, 3]) / 2 >= mid
    for half in (near, ~near):
        if not (leans_left[half].any() and (~leans_left[half]).any()):
            continue
        q = _solve(normal[half], offset[half], length[half])
        if q is None or np.abs(q - p).max() > STRAIGHT:
            return None
    rms = float(np.sqrt(np.average((normal @ p - offset) ** 2, weights=length)))
    return VanishingPoint(float(p[0]), float(p[1]), float(length.sum()), rms)
