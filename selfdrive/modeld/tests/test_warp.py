"""The warp into the model frame undoes the camera: the same road seen by unlike cameras gives the model the same
picture once each frame is warped with its own camera's intrinsics and lens."""

import dataclasses

import numpy as np

from common.transformations.camera import CameraModel
from selfdrive.modeld.constants import MODEL_H, MODEL_W
from selfdrive.modeld.warp import model_pixels_in_camera, warp_maps, warp_y
from tools.sim.lib.dynamics import VehicleState
from tools.sim.lib.renderer import Look, Renderer
from tools.sim.lib.scenarios import make_world

WIDE = dataclasses.replace(CameraModel.from_fov(1164, 874, 90.0), principal=(560.0, 450.0), dist=(-0.12, 0.02))
NARROW = CameraModel.from_fov(1164, 874, 60.0)
ROAD = 60  # model-frame rows from here down: the road ahead, its lines (the far rows resample distant cars)


def model_frame(cam: CameraModel, warp_as: CameraModel | None = None) -> np.ndarray:
    world = make_world("highway", 1)
    x, y, yaw = world.road.position(world.ego_s, world.road.lane_center_offset(world.ego_lane))
    frame = Renderer(camera=cam, look=Look.plain()).render(world, VehicleState(x=x, y=y, yaw=yaw, vx=world.ego_speed))
    return warp_y(np.ascontiguousarray(frame[:cam.height]), warp_maps((0.0, 0.0, 0.0), warp_as or cam))


def test_unlike_cameras_give_the_model_the_same_picture():
    ref = model_frame(CameraModel())[ROAD:]
    for cam in (NARROW, WIDE):
        diff = np.abs(model_frame(cam)[ROAD:].astype(int) - ref).mean()
        ignored = np.abs(model_frame(cam, warp_as=CameraModel())[ROAD:].astype(int) - ref).mean()
        # what is left is resampling (a wider lens has fewer pixels per degree); ignoring the camera is 3x worse
        assert diff < 0.5 and ignored > 3 * diff, (cam.describe(), diff, ignored)


def test_a_pixel_on_the_axis_lands_where_the_lens_puts_it():
    pix = model_pixels_in_camera((0.0, 0.0, 0.0), WIDE)
    assert pix.shape == (MODEL_H, MODEL_W, 2)
    # the model camera's axis is pitched down by MODEL_PITCH: straight ahead lies above its centre; that ray through
    # the wide camera must land where the wide camera (with its lens) projects it
    ahead = WIDE.view_to_pixels(np.array([0.0, 0.0, 1.0]))
    rows = np.abs(pix[:, MODEL_W // 2, 1] - ahead[1])
    assert rows.min() < 3.0 and np.abs(pix[:, :, 0] - ahead[0]).min() < 1.0
