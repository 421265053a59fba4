"""Road camera frame -> model frame: one perspective warp (OpenCV) built from the shared camera model.

The model frame is a virtual camera at the road camera's position with no mount rotation except
MODEL_PITCH, so once calibration is right the road looks the same whatever way the camera is mounted."""

import cv2
import numpy as np

from common.transformations.camera import CameraModel, Pose, calibrated_camera
from selfdrive.modeld.constants import MODEL_FOCAL, MODEL_H, MODEL_PITCH, MODEL_W

MODEL_CAMERA = CameraModel(MODEL_W, MODEL_H, MODEL_FOCAL, forward=0.0, pitch=float(MODEL_PITCH))
ROAD_FOCAL = CameraModel().focal


def _view_rotation(cam: CameraModel) -> np.ndarray:
    return cam.view_from_world(Pose(0.0, 0.0))[0]


def model_to_camera(rpy_calib, width: int = 1164, height: int = 874) -> np.ndarray:
    """The 3x3 homography from model-frame pixels to road-camera pixels, for a camera whose mount angles
    (roll, pitch, yaw) are `rpy_calib`. Frames of another size than 1164x874 are taken as the same camera
    scaled (the focal length scales with the width)."""
    base = CameraModel(width, height, ROAD_FOCAL * width / 1164.0)
    cam = calibrated_camera(rpy_calib, base=base)
    rot = _view_rotation(cam) @ _view_rotation(MODEL_CAMERA).T
    return cam.intrinsics @ rot @ np.linalg.inv(MODEL_CAMERA.intrinsics)


def warp_y(y_plane: np.ndarray, h_model_to_cam: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The (MODEL_H, MODEL_W) uint8 model frame from a road camera luma plane."""
    return cv2.warpPerspective(y_plane, h_model_to_cam, (MODEL_W, MODEL_H), dst=out,
                               flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
