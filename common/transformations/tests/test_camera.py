import math

import numpy as np
import pytest

from common.transformations.camera import CameraModel, Pose, project_points

CAM = CameraModel()


def px(cam: CameraModel, pose: Pose, *points) -> np.ndarray:
    return project_points(cam, pose, np.array(points, dtype=float))[0]


class TestConventions:
    def test_intrinsics_are_the_comma2k19_road_camera(self):
        assert (CAM.width, CAM.height, CAM.focal, CAM.cx, CAM.cy) == (1164, 874, 910.0, 582.0, 437.0)
        assert np.array_equal(CAM.intrinsics, [[910, 0, 582], [0, 910, 437], [0, 0, 1]])

    def test_ground_point_ahead_projects_below_the_centre_by_f_h_over_z(self):
        (u, v), = px(CAM, Pose(0, 0), (CAM.forward + 20.0, 0.0, 0.0))
        assert u == pytest.approx(582.0) and v == pytest.approx(437.0 + 910.0 * 1.22 / 20.0)

    def test_left_is_left_and_up_is_up(self):
        (ul, vl), (uu, vu) = px(CAM, Pose(0, 0), (10.5, 2.0, 1.22), (10.5, 0.0, 3.22))
        assert ul == pytest.approx(582.0 - 910.0 * 2.0 / 10.0) and vl == pytest.approx(437.0)
        assert vu == pytest.approx(437.0 - 910.0 * 2.0 / 10.0)

    @pytest.mark.parametrize("yaw", [0.0, 1.0, -2.5, math.pi])
    def test_world_yaw_turns_with_the_car(self, yaw):
        ahead = (10.5 * math.cos(yaw), 10.5 * math.sin(yaw), 0.0)
        (u, v), = px(CAM, Pose(0, 0, 0, yaw), ahead)
        assert u == pytest.approx(582.0) and v == pytest.approx(437.0 + 910.0 * 1.22 / 10.0)

    def test_mount_offsets(self):
        far = (1e5, 0.0, 1.22)
        (u, v), = px(CameraModel(pitch=0.05), Pose(0, 0), far)      # looking down: the horizon rises
        assert v == pytest.approx(437.0 - 910.0 * math.tan(0.05), abs=1e-3)
        (u, v), = px(CameraModel(yaw=0.05), Pose(0, 0), far)        # looking left: straight ahead is right
        assert u == pytest.approx(582.0 + 910.0 * math.tan(0.05), abs=1e-3)
        (ul, vl), (ur, vr) = px(CameraModel(roll=0.05), Pose(0, 0), (1e5, 1e4, 1.22), (1e5, -1e4, 1.22))
        assert vr < vl          # right side down: the horizon tilts up to the right in the image

    def test_body_pitch_from_a_grade(self):
        # climbing (nose up: negative pitch) makes a flat far point appear lower
        (u, v), = px(CAM, Pose(0, 0, 0, 0, pitch=-0.03), (1e5, 0.0, 1.22))
        assert v > 437.0 + 20.0

    def test_points_behind_are_nan_with_negative_depth(self):
        pix, depth = project_points(CAM, Pose(0, 0), np.array([[-5.0, 0, 0], [CAM.forward, 1.0, 1.0], [5.0, 0, 0]]))
        assert np.isnan(pix[:2]).all() and np.isfinite(pix[2]).all()
        assert depth[0] < 0 and depth[1] == pytest.approx(0.0) and depth[2] > 0

    def test_batch_shapes(self):
        pts = np.random.default_rng(0).uniform(1, 50, (4, 7, 3))
        pix, depth = project_points(CAM, Pose(1, 2, 0.1, 0.3), pts)
        assert pix.shape == (4, 7, 2) and depth.shape == (4, 7)
        flat, _ = project_points(CAM, Pose(1, 2, 0.1, 0.3), pts.reshape(-1, 3))
        assert np.array_equal(flat.reshape(4, 7, 2), pix)
