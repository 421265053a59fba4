"""The road camera model: one projection from the world to pixels, shared by the simulator's renderer, its
tests and anything that overlays ground truth or model output on a frame.

Frames:
- world: x east, y north, z up (the simulator's frame).
- body (the car): x forward, y left, z up, origin on the ground under the car's reference point (its CG);
  its pose in the world is Pose(x, y, z, yaw, pitch, roll), yaw counter-clockwise from +x, pitch positive
  nose DOWN, roll positive right side down (right-handed rotations about the body's y and x axes).
- camera: mounted `height` m above the body origin and `forward` m ahead of it, rotated by the mount's
  (yaw, pitch, roll) relative to the body with the same sign conventions (pitch > 0 looks down).
- view: x right, y down, z forward (along the optical axis); pixels u = cx + fx x'' , v = cy + fy y'' where
  (x'', y'') is (x / z, y / z) through OpenCV's lens distortion model (k1, k2, p1, p2, k3; none by default).

Defaults are the comma2k19 road camera: 1164 x 874 pixels, focal length 910 px, principal point at the
image centre (582, 437), no distortion, about 1.22 m above the road. A real camera's intrinsics come from a
camera file (common/transformations/camera_file.py) or a stated field of view (`from_fov`).
"""

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

# view axes (right, down, forward) expressed in the camera's own (forward, left, up) axes
_VIEW_FROM_FLU = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])


def rot_zyx(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rz(yaw) @ Ry(pitch) @ Rx(roll): the frame's axes in its parent frame (columns)."""
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    rz = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
    return rz @ ry @ rx


@dataclass(frozen=True)
class Pose:
    """The car body's pose in the world (see the module docstring for the conventions)."""
    x: float
    y: float
    z: float = 0.0
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0


@dataclass(frozen=True)
class CameraModel:
    width: int = 1164
    height: int = 874
    focal: float = 910.0         # px, horizontal (fx)
    cam_height: float = 1.22     # m above the ground
    forward: float = 0.5         # m ahead of the body origin (the windscreen is ahead of the CG)
    pitch: float = 0.0           # rad, mount offsets relative to the body
    yaw: float = 0.0
    roll: float = 0.0
    focal_y: float = 0.0         # px, vertical (fy); 0: square pixels, fy = fx
    principal: tuple[float, float] | None = None  # (cx, cy) px; None: the image centre
    dist: tuple[float, ...] = ()  # OpenCV's (k1, k2, p1, p2, k3); missing terms are 0

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float, **kw) -> "CameraModel":
        """A distortion-free camera with square pixels, its principal point at the centre, seeing `hfov_deg`
        degrees across its width."""
        if not (10.0 <= hfov_deg <= 170.0):
            raise ValueError(f"a horizontal field of view must be 10..170 degrees, got {hfov_deg}")
        return cls(width, height, (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0), **kw)

    @property
    def fx(self) -> float:
        return self.focal

    @property
    def fy(self) -> float:
        return self.focal_y or self.focal

    @property
    def cx(self) -> float:
        return self.principal[0] if self.principal is not None else self.width / 2.0

    @property
    def cy(self) -> float:
        return self.principal[1] if self.principal is not None else self.height / 2.0

    @property
    def intrinsics(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def distortion(self) -> np.ndarray:
        """(k1, k2, p1, p2, k3), as OpenCV takes them."""
        return np.array((tuple(self.dist) + (0.0,) * 5)[:5], dtype=float)

    @property
    def distorted(self) -> bool:
        return any(self.dist)

    @property
    def hfov_deg(self) -> float:
        """The horizontal field of view through the principal point (without distortion)."""
        return math.degrees(math.atan(self.cx / self.fx) + math.atan((self.width - self.cx) / self.fx))

    def scaled(self, width: int, height: int) -> "CameraModel":
        """The same camera delivering `width` x `height` pictures (a sensor mode with the same aspect, or a
        resized video): intrinsics scale with the size, distortion (in normalised coordinates) stays."""
        sx, sy = width / self.width, height / self.height
        if abs(sx - sy) > 0.01 * sx:
            raise ValueError(f"a {self.width}x{self.height} camera cannot deliver {width}x{height} pictures "
                             f"(another aspect ratio: a different crop of the sensor)")
        return dataclasses.replace(self, width=width, height=height, focal=self.focal * sx,
                                   focal_y=self.focal_y * sy, principal=(self.cx * sx, self.cy * sy))

    def with_mount(self, pitch: float = 0.0, yaw: float = 0.0, roll: float = 0.0, **kw) -> "CameraModel":
        """These intrinsics on another mount."""
        return dataclasses.replace(self, pitch=pitch, yaw=yaw, roll=roll, **kw)

    def describe(self) -> str:
        """One line: size, field of view, intrinsics and whether it is distorted."""
        lens = ("distortion " + ", ".join(f"{k:+.3f}" for k in self.distortion)) if self.distorted else "no distortion"
        return (f"{self.width}x{self.height}, {self.hfov_deg:.1f} deg horizontal field of view, fx {self.fx:.1f} "
                f"fy {self.fy:.1f} px, principal point ({self.cx:.1f}, {self.cy:.1f}), {lens}")

    def distort(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised image coordinates (x/z, y/z) through the lens: OpenCV's radial and tangential model."""
        if not self.distorted:
            return x, y
        k1, k2, p1, p2, k3 = self.distortion
        r2 = x * x + y * y
        radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
        return (x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x),
                y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y)

    def view_from_world(self, pose: Pose) -> tuple[np.ndarray, np.ndarray]:
        """(R, t) with view = R @ world + t."""
        r_wb = rot_zyx(pose.yaw, pose.pitch, pose.roll)
        r_wc = r_wb @ rot_zyx(self.yaw, self.pitch, self.roll)
        centre = np.array([pose.x, pose.y, pose.z]) + r_wb @ np.array([self.forward, 0.0, self.cam_height])
        r = _VIEW_FROM_FLU @ r_wc.T
        return r, -r @ centre

    def camera_position(self, pose: Pose) -> np.ndarray:
        r_wb = rot_zyx(pose.yaw, pose.pitch, pose.roll)
        return np.array([pose.x, pose.y, pose.z]) + r_wb @ np.array([self.forward, 0.0, self.cam_height])

    def to_view(self, pose: Pose, points_world) -> np.ndarray:
        """World points (..., 3) in view coordinates (..., 3)."""
        r, t = self.view_from_world(pose)
        return np.asarray(points_world, dtype=float) @ r.T + t

    def view_to_pixels(self, view) -> np.ndarray:
        """View points (..., 3) to pixels (..., 2); NaN for points not in front of the camera."""
        view = np.asarray(view, dtype=float)
        inv = 1.0 / np.where(view[..., 2] > 1e-6, view[..., 2], np.nan)
        x, y = self.distort(view[..., 0] * inv, view[..., 1] * inv)
        out = np.empty(view.shape[:-1] + (2,))
        out[..., 0] = self.cx + self.fx * x
        out[..., 1] = self.cy + self.fy * y
        return out


def project_points(cam: CameraModel, pose: Pose, points_world) -> tuple[np.ndarray, np.ndarray]:
    """World points (..., 3) -> (pixels (..., 2), depth along the optical axis (...)). Pixels are NaN for
    points at or behind the camera plane. The one projection everything uses."""
    view = cam.to_view(pose, points_world)
    return cam.view_to_pixels(view), view[..., 2]


# --- the stack's road camera: liveCalibration + modelV2's car frame -> pixels (used by uid's overlay) ---
# modelV2's car frame: x forward, y left, z up, origin on the road directly below the camera, so a point on a
# flat road has z = 0 (the frame of the model's path, lane lines, road edges and leads).
# liveCalibration.rpyCalib is (roll, pitch, yaw) of the camera relative to the car, in this module's mount
# convention: pitch > 0 looks down, yaw > 0 looks left, roll > 0 right side down.

def calibrated_camera(rpy_calib, height: float | None = None, base: CameraModel = CameraModel()) -> CameraModel:
    """The road camera with liveCalibration's mount angles (and height, when known) on `base`'s intrinsics.
    Non-finite or missing angles count as 0; a height outside 0.3..5 m keeps `base`'s."""
    rpy = [float(a) if a == a and abs(float(a)) < math.pi else 0.0 for a in list(rpy_calib)[:3]] + [0.0] * 3
    h = float(height) if height is not None and 0.3 < float(height) < 5.0 else base.cam_height
    return base.with_mount(roll=rpy[0], pitch=rpy[1], yaw=rpy[2], cam_height=h, forward=0.0)


def project_car_points(cam: CameraModel, points_car) -> tuple[np.ndarray, np.ndarray]:
    """Points (..., 3) in modelV2's car frame -> (pixels (..., 2), depth (...)), via `project_points`."""
    return project_points(cam, Pose(-cam.forward, 0.0), points_car)
