"""Camera calibration from the lane lines' vanishing point and the driving model's path: the logic of calibrationd
(no sockets here).

The vanishing point (selfdrive/locationd/vanishing_point.py) measures the mount directly from the picture, while the
car drives straight (`feed_vp`); it is what calibrates on real roads, where the model's path may bend on a straight
road. The model's path (`feed`) counts only while no vanishing point has been seen lately (roads without lines):

The model answers in the car frame that the warp's calibration believes in. Driving straight, the true path
runs along the car's x axis on the road; seen through a calibration that is off by (pitch e_p, yaw e_y), the
predicted path turns: y grows with x at -tan(e_y) and z at tan(e_p) (tools/train/targets.py builds the
training targets exactly so). Each usable frame gives the mount angles = (calibration used) composed with
that error; blocks of frames give robust (median) estimates, and the calibration is the mean of the newest
blocks, so it converges as modeld warps with the better calibration and the error to measure shrinks.
"""

import json
import math
from dataclasses import dataclass, field

import numpy as np

from common.transformations.camera import rot_zyx

FIT_X = (8.0, 60.0)           # m of path used for the direction fit
MIN_SPEED = 8.0               # m/s (path x at 1 s): slow driving says little about the direction
MAX_CURVATURE = 4e-4          # 1/m: straight enough (the path's own bend, see path_fit)
MIN_CONFIDENCE = 0.2          # applies once calibrated (see Calibrator.feed)
BLOCK_FRAMES = 40             # usable frames per block (2 s at 20 Hz)
MAX_BLOCKS = 8                # the calibration averages the newest blocks
MIN_BLOCKS = 4                # blocks before the calibration counts as calibrated
SETTLE_FRAMES = 4             # frames ignored after the calibration changes (modeld switches over)
MAX_ANGLE = math.radians(10.0)  # beyond this the camera is mounted wrong: invalid
VP_HOLD = 40                  # path frames (2 s) during which a recent vanishing point takes precedence over the path


def angles_of(r: np.ndarray) -> tuple[float, float, float]:
    """(roll, pitch, yaw) of a rot_zyx matrix."""
    return (math.atan2(r[2, 1], r[2, 2]), -math.asin(max(-1.0, min(1.0, r[2, 0]))), math.atan2(r[1, 0], r[0, 0]))


def path_fit(x, y, z) -> tuple[float, float, float] | None:
    """(pitch error, yaw error, curvature) from a path (car frame points), or None when the path does not reach
    far enough. The errors are those of the calibration if the car drives straight; the curvature (1/m, the
    path's own bend) says whether it does. It comes from the path's shape, not the model's curvature head:
    turning a straight path by a wrong yaw leaves it straight, while a model fed a turned picture may well
    answer a turn (the development model did: -1.2e-3 1/m at 2 deg of yaw error)."""
    x, y, z = (np.asarray(v, dtype=float) for v in (x, y, z))
    sel = (x >= FIT_X[0]) & (x <= FIT_X[1]) & np.isfinite(x) & np.isfinite(y) & np.isfinite(z)
    if sel.sum() < 4 or np.ptp(x[sel]) < 15.0:
        return None
    bend, slope_y, _ = np.polyfit(x[sel], y[sel], 2)
    x_mid = float(np.mean(x[sel]))
    slope_y += 2.0 * bend * x_mid      # the direction in the middle of the fitted stretch
    slope_z = np.polyfit(x[sel], z[sel], 1)[0]
    return math.atan(slope_z), -math.atan(slope_y), 2.0 * float(bend)


def path_speed(x) -> float:
    """m/s: how far the model's path (x at 0, 0.5, 1... s) reaches in 1 s; the speed the picture shows."""
    x = np.asarray(x, dtype=float)
    return float(np.interp(1.0, np.arange(len(x)) * 0.5, x)) if len(x) > 2 else 0.0


def path_error(x, y, z) -> tuple[float, float] | None:
    """(pitch, yaw) error of the calibration from a straight-driving path, or None (see path_fit)."""
    fit = path_fit(x, y, z)
    return None if fit is None else fit[:2]


def compose(rpy_used, err: tuple[float, float]) -> tuple[float, float, float]:
    """The mount angles (roll, pitch, yaw) when the calibration `rpy_used` is off by err = (pitch, yaw)."""
    r = rot_zyx(err[1], err[0], 0.0) @ rot_zyx(rpy_used[2], rpy_used[1], rpy_used[0])
    return angles_of(r)


@dataclass
class Calibrator:
    rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    blocks: list[tuple[float, float]] = field(default_factory=list)   # (pitch, yaw) per block
    valid_blocks: int = 0
    _frames: list[tuple[float, float]] = field(default_factory=list)
    _settle: int = 0
    _vp_hold: int = 0

    def feed_vp(self, pitch: float, yaw: float) -> bool:
        """One frame's mount angles from the lane lines' vanishing point, taken while driving straight above
        MIN_SPEED (the caller's gates). Returns True when the calibration changed."""
        if not (math.isfinite(pitch) and math.isfinite(yaw)) or max(abs(pitch), abs(yaw)) > 2 * MAX_ANGLE:
            return False
        self._vp_hold = VP_HOLD
        return self._add((pitch, yaw))

    def _add(self, angles: tuple[float, float]) -> bool:
        self._frames.append(angles)
        if len(self._frames) < BLOCK_FRAMES:
            return False
        self.blocks.append(tuple(np.median(np.array(self._frames), axis=0)))
        self.blocks = self.blocks[-MAX_BLOCKS:]
        self._frames = []
        self.valid_blocks += 1
        mean = np.mean(np.array(self.blocks), axis=0)
        self.rpy = (0.0, float(mean[0]), float(mean[1]))
        self._settle = SETTLE_FRAMES
        return True

    def feed(self, x, y, z, confidence: float = 1.0) -> bool:
        """One modelV2's path (made with the current `rpy`; x at 0, 0.5, 1... s). Returns True when the
        calibration changed.

        The model's confidence counts only once calibrated: a camera mounted off by a few degrees is exactly
        what makes the model unsure (2 deg of yaw took the development model from 0.6 to 0.05), so requiring
        confidence first would never let calibration start. openpilot's calibrationd does the same with its
        odometry's uncertainty."""
        x = np.asarray(x, dtype=float)
        speed = path_speed(x)
        if self._vp_hold > 0:
            self._vp_hold -= 1
            return False
        if self._settle > 0:
            self._settle -= 1
            return False
        if not speed > MIN_SPEED:
            return False
        if self.valid_blocks >= MIN_BLOCKS and not confidence >= MIN_CONFIDENCE:
            return False
        fit = path_fit(x, y, z)
        if fit is None or not abs(fit[2]) < MAX_CURVATURE:
            return False
        _, pitch, yaw = compose(self.rpy, fit[:2])
        return self._add((pitch, yaw))

    @property
    def status(self) -> str:
        if max(abs(self.rpy[1]), abs(self.rpy[2])) > MAX_ANGLE:
            return "invalid"
        return "calibrated" if self.valid_blocks >= MIN_BLOCKS else "uncalibrated"

    @property
    def percent(self) -> int:
        return min(100, int(100 * self.valid_blocks / MIN_BLOCKS))

    @property
    def spread(self) -> tuple[float, float, float]:
        if len(self.blocks) < 2:
            return (0.0, 0.0, 0.0)
        s = np.std(np.array(self.blocks), axis=0)
        return (0.0, float(s[0]), float(s[1]))

    # --- persistence (params CalibrationParams) ---
    def to_bytes(self) -> bytes:
        return json.dumps({"rpy": list(self.rpy), "blocks": [list(b) for b in self.blocks],
                           "valid_blocks": self.valid_blocks}).encode()

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> "Calibrator":
        """A stored calibration, or a fresh one when there is none or it is unreadable or out of range."""
        try:
            d = json.loads(raw) if raw else None
            rpy = tuple(float(v) for v in d["rpy"])
            blocks = [(float(a), float(b)) for a, b in d["blocks"]][-MAX_BLOCKS:]
            valid = int(d["valid_blocks"])
            # a NaN or wild block would poison every later mean: the whole record is refused, not patched
            angles = list(rpy) + [v for b in blocks for v in b]
            if len(rpy) != 3 or not all(math.isfinite(v) and abs(v) <= MAX_ANGLE for v in angles) or valid < 0:
                return cls()
            return cls(rpy=rpy, blocks=blocks, valid_blocks=valid)
        except (TypeError, ValueError, KeyError, IndexError, RecursionError, OverflowError):
            return cls()
