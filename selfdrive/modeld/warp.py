"""Road camera frame -> model frame: one remap (OpenCV) per frame, built from the road camera's model.

The model frame is a virtual pinhole camera at the road camera's position with no mount rotation except
MODEL_PITCH, so once calibration is right the road looks the same whatever way, and with whatever lens, the camera is
mounted. For every model-frame pixel the map holds where its ray lands in the road camera's picture: through the
calibrated mount rotation, the camera's intrinsics and its lens distortion (common/transformations/camera.py), so
undistorting and warping are one lookup. Maps are rebuilt only when the calibration or the camera changes."""

import cv2
import numpy as np

from common.transformations.camera import CameraModel, Pose, calibrated_camera
from selfdrive.modeld.constants import MODEL_FOCAL, MODEL_H, MODEL_PITCH, MODEL_W

MODEL_CAMERA = CameraModel(MODEL_W, MODEL_H, MODEL_FOCAL, forward=0.0, pitch=float(MODEL_PITCH))
DEFAULT_CAMERA = CameraModel()
OUTSIDE = -1e4  # a model pixel whose ray misses the camera (behind it): the border's pixel (BORDER_REPLICATE)


def _view_rotation(cam: CameraModel) -> np.ndarray:
    return cam.view_from_world(Pose(0.0, 0.0))[0]


def model_pixels_in_camera(rpy_calib, camera: CameraModel = DEFAULT_CAMERA) -> np.ndarray:
    """(MODEL_H, MODEL_W, 2) float: where each model-frame pixel's centre lies in the road camera's picture, for a
    camera whose mount angles (roll, pitch, yaw) are `rpy_calib`."""
    road = calibrated_camera(rpy_calib, base=camera)
    rot = _view_rotation(road) @ _view_rotation(MODEL_CAMERA).T
    u, v = np.meshgrid(np.arange(MODEL_W, dtype=float), np.arange(MODEL_H, dtype=float))
    rays = np.stack([(u - MODEL_CAMERA.cx) / MODEL_CAMERA.fx, (v - MODEL_CAMERA.cy) / MODEL_CAMERA.fy,
                     np.ones_like(u)], -1)
    pix = road.view_to_pixels(rays @ rot.T)
    return np.where(np.isfinite(pix), pix, OUTSIDE)


def warp_maps(rpy_calib, camera: CameraModel = DEFAULT_CAMERA) -> tuple[np.ndarray, np.ndarray]:
    """The remap tables (OpenCV's fixed-point form, the fastest to apply) for `warp_y`."""
    pix = model_pixels_in_camera(rpy_calib, camera).astype(np.float32)
    return cv2.convertMaps(pix[..., 0], pix[..., 1], cv2.CV_16SC2)


def warp_y(y_plane: np.ndarray, maps: tuple[np.ndarray, np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
    """The (MODEL_H, MODEL_W) uint8 model frame from a road camera luma plane."""
    return cv2.remap(y_plane, maps[0], maps[1], cv2.INTER_LINEAR, dst=out, borderMode=cv2.BORDER_REPLICATE)
