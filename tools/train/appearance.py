"""What real cameras and real roads add to the simulator's clean polygons, for training data (issue 18).

- `random_camera`: a camera unlike the simulator's own: field of view, picture size and aspect, principal point,
  lens distortion and an uncalibrated roll (calibrationd measures pitch and yaw only).
- `Artefacts`: drawn per sample and applied to the camera's luma before the warp, the same on the previous and
  the current frame: shadows across the road (trees, bridges), dark cracks and tar seams running along the road
  (lines that are not lane lines), glare, raindrops on the windscreen, motion blur and JPEG compression.
- `not_road_frames`: model-frame pictures of no road at all (flat grey, smooth blotches, clutter, texture), whose
  only targets are "no line, no lead".

These are image-space effects: they need not be consistent from one sample to the next, only between the two
frames of a sample (the model sees both).
"""

import math
from dataclasses import dataclass

import cv2
import numpy as np

from common.transformations.camera import CameraModel
from selfdrive.modeld.constants import CAMERA_HEIGHT, MODEL_H, MODEL_W

HFOV_DEG = (45.0, 95.0)
SIZES = ((1164, 874), (1280, 720), (960, 540), (1024, 768), (1280, 960), (1152, 648))
PRINCIPAL_SHIFT = 0.04        # of the picture's size, each way
DISTORTED_P = 0.4             # share of cameras with a visibly distorting lens
K1, K2 = (-0.32, 0.02), (-0.04, 0.10)
ROLL_MAX = math.radians(1.5)  # mount roll nobody calibrates
FORWARD = 0.5                 # m, the camera ahead of the car's reference point (the renderer's)


def random_camera(rng: np.random.Generator, pitch: float, yaw: float) -> CameraModel:
    """A random road camera mounted at (pitch, yaw) and a small random roll. Its height stays the one the stack
    assumes (constants.CAMERA_HEIGHT): a camera at another height sees the road scaled by h / CAMERA_HEIGHT, and
    a model that learnt one height keeps its lines on the paint in pixels whatever the real one is."""
    w, h = SIZES[int(rng.integers(len(SIZES)))]
    hfov = float(rng.uniform(*HFOV_DEG))
    focal = (w / 2.0) / math.tan(math.radians(hfov) / 2.0)
    principal = (w / 2.0 * (1.0 + rng.uniform(-PRINCIPAL_SHIFT, PRINCIPAL_SHIFT)),
                 h / 2.0 * (1.0 + rng.uniform(-PRINCIPAL_SHIFT, PRINCIPAL_SHIFT)))
    dist = (float(rng.uniform(*K1)), float(rng.uniform(*K2))) if rng.random() < DISTORTED_P else ()
    corner = math.hypot(max(principal[0], w - principal[0]) / focal, max(principal[1], h - principal[1]) / focal)
    while dist and not lens_is_monotonic(dist, corner):
        dist = (dist[0] / 2.0, dist[1] / 2.0)   # a lens that folds its picture back on itself is no real lens
    return CameraModel(w, h, focal, CAMERA_HEIGHT, FORWARD, pitch=pitch, yaw=yaw,
                       roll=float(rng.uniform(-ROLL_MAX, ROLL_MAX)), principal=principal, dist=dist)


def lens_is_monotonic(dist: tuple[float, float], corner: float, margin: float = 0.25) -> bool:
    """True when the radial distortion r -> r (1 + k1 r^2 + k2 r^4) keeps growing (slope > margin) out to 1.3x the
    picture's corner radius `corner` (normalised): else undistorting the picture's rim has no answer and the
    renderer's canvas for it is unbounded."""
    k1, k2 = dist
    r2 = np.linspace(0.0, (1.3 * corner) ** 2, 200)
    return bool((1.0 + 3.0 * k1 * r2 + 5.0 * k2 * r2 * r2 > margin).all())


@dataclass(frozen=True)
class Artefacts:
    seed: int
    shadows: int = 0          # dark shapes across the road
    seams: int = 0            # dark lines along the road (tar seams, cracks, old paint removed)
    cracks: int = 0           # short dark zig-zags
    glare: float = 0.0        # 0..1, a washed-out bright blob
    drops: int = 0            # blurred discs (rain on the windscreen)
    motion: int = 0           # px, length of a motion blur kernel (0: none)
    jpeg: int = 0             # JPEG quality (0: not compressed)

    @classmethod
    def random(cls, rng: np.random.Generator) -> "Artefacts":
        p = rng.random(7)
        return cls(seed=int(rng.integers(2 ** 31)),
                   shadows=int(rng.integers(1, 6)) if p[0] < 0.45 else 0,
                   seams=int(rng.integers(1, 4)) if p[1] < 0.35 else 0,
                   cracks=int(rng.integers(1, 8)) if p[2] < 0.3 else 0,
                   glare=float(rng.uniform(0.2, 0.7)) if p[3] < 0.15 else 0.0,
                   drops=int(rng.integers(5, 40)) if p[4] < 0.1 else 0,
                   motion=int(rng.integers(3, 10)) if p[5] < 0.2 else 0,
                   jpeg=int(rng.integers(12, 70)) if p[6] < 0.4 else 0)

    def apply(self, y: np.ndarray, cam: CameraModel) -> np.ndarray:
        """A copy of the luma `y` of a picture from `cam` with these artefacts (deterministic in `seed`)."""
        rng = np.random.default_rng(self.seed)
        out = y.astype(np.float32)
        h, w = y.shape
        horizon = cam.cy - cam.fy * math.tan(cam.pitch)     # row of the vanishing line, roughly
        vanish_u = cam.cx - cam.fx * math.tan(cam.yaw)
        top = int(np.clip(horizon, 0, h - 2))
        if self.shadows:
            shade = np.ones((h, w), np.float32)
            for _ in range(self.shadows):
                k = float(rng.uniform(0.35, 0.75))
                if rng.random() < 0.3:   # a bridge or a building: a band across the whole road
                    v0 = rng.uniform(top, h)
                    band = np.array([[0, v0], [w, v0 + rng.uniform(-20, 20)],
                                     [w, v0 + rng.uniform(20, 160)], [0, v0 + rng.uniform(20, 160)]])
                    cv2.fillPoly(shade, [band.astype(np.int32)], k)
                else:                    # a tree: a cluster of blobs
                    cu, cv_ = rng.uniform(0, w), rng.uniform(top, h)
                    for _ in range(int(rng.integers(3, 9))):
                        centre = (int(cu + rng.normal(0, 60)), int(cv_ + rng.normal(0, 25)))
                        axes = (int(rng.uniform(15, 110)), int(rng.uniform(6, 40)))
                        cv2.ellipse(shade, centre, axes, float(rng.uniform(0, 180)), 0, 360, k, -1)
            shade = cv2.GaussianBlur(shade, (0, 0), float(rng.uniform(1.0, 6.0)))
            out *= shade
        lines = np.ones((h, w), np.float32)
        for _ in range(self.seams):   # from near the vanishing point to the bottom: looks like a line on the road
            a = (int(vanish_u + rng.normal(0, 0.05 * w)), int(horizon + rng.uniform(4, 40)))
            b = (int(rng.uniform(-0.5 * w, 1.5 * w)), h)
            cv2.line(lines, a, b, float(rng.uniform(0.4, 0.8)), int(rng.integers(1, 5)), cv2.LINE_AA)
        for _ in range(self.cracks):
            pts = [np.array([rng.uniform(0, w), rng.uniform(top, h)])]
            for _ in range(int(rng.integers(4, 15))):
                pts.append(pts[-1] + rng.normal(0, 12, 2))
            cv2.polylines(lines, [np.array(pts, np.int32)], False, float(rng.uniform(0.45, 0.8)), 1, cv2.LINE_AA)
        if self.seams or self.cracks:
            out *= lines
        if self.glare > 0:
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            gu, gv, r = rng.uniform(0, w), rng.uniform(0, 0.8 * h), rng.uniform(0.2, 0.6) * w
            blob = self.glare * np.exp(-((xx - gu) ** 2 + (yy - gv) ** 2) / (2.0 * r * r))
            out = out * (1.0 - blob) + 255.0 * blob
        if self.drops:
            soft = cv2.GaussianBlur(out, (0, 0), 6.0)
            mask = np.zeros((h, w), np.uint8)
            for _ in range(self.drops):
                cv2.circle(mask, (int(rng.uniform(0, w)), int(rng.uniform(0, h))), int(rng.uniform(4, 28)), 255, -1)
            out = np.where(mask > 0, soft, out)
        if self.motion:
            kernel = np.zeros((self.motion, self.motion), np.float32)
            kernel[:, self.motion // 2] = 1.0 / self.motion   # vertical: the road streams down the picture
            out = cv2.filter2D(out, -1, kernel)
        res = np.clip(out, 0, 255).astype(np.uint8)
        if self.jpeg:
            ok, enc = cv2.imencode(".jpg", res, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg])
            res = cv2.imdecode(enc, cv2.IMREAD_GRAYSCALE) if ok else res
        return res


NOT_ROAD_KINDS = ("grey", "blotches", "clutter", "texture", "gradient")


def not_road_frames(rng: np.random.Generator) -> np.ndarray:
    """(2, MODEL_H, MODEL_W) uint8: a picture of no road (one of NOT_ROAD_KINDS), the second frame a slightly
    shifted copy of the first (a camera that moves a little)."""
    kind = NOT_ROAD_KINDS[int(rng.integers(len(NOT_ROAD_KINDS)))]
    h, w = MODEL_H + 8, MODEL_W + 8
    if kind == "grey":
        img = np.full((h, w), rng.uniform(20, 235), np.float32)
    elif kind == "blotches":
        small = rng.uniform(0, 255, (int(rng.integers(2, 9)), int(rng.integers(2, 17)))).astype(np.float32)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    elif kind == "clutter":
        img = np.full((h, w), rng.uniform(40, 220), np.float32)
        for _ in range(int(rng.integers(3, 25))):
            p0 = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
            p1 = (int(p0[0] + rng.uniform(-80, 80)), int(p0[1] + rng.uniform(-60, 60)))
            cv2.rectangle(img, p0, p1, float(rng.uniform(0, 255)), -1 if rng.random() < 0.7 else 2)
    elif kind == "texture":
        img = cv2.GaussianBlur(rng.normal(128, rng.uniform(10, 60), (h, w)).astype(np.float32), (0, 0),
                               float(rng.uniform(0.5, 3.0)))
    else:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        a = rng.normal(0, 1, 2)
        img = 128 + 100 * np.tanh((a[0] * (xx - w / 2) + a[1] * (yy - h / 2)) / rng.uniform(20, 200))
    img += rng.normal(0, rng.uniform(0, 6), img.shape).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    du, dv = rng.integers(0, 9, 2)
    return np.stack((img[4:4 + MODEL_H, 4:4 + MODEL_W], img[dv:dv + MODEL_H, du:du + MODEL_W]))
