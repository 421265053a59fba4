import math
import re

import numpy as np
import pytest

from common.transformations.camera import CameraModel, Pose, project_points
from common.transformations.camera_file import CameraFileError, load_camera_file, save_camera_file

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


class TestRealCameras:
    LENS = CameraModel(1280, 720, 1158.6, focal_y=1153.8, principal=(669.8, 388.1),
                       dist=(-0.257, 0.044, -0.001, 0.0002, -0.113))

    def test_a_distorted_camera_projects_as_opencv_does(self):
        import cv2
        pts = np.array([[0.3, -0.2, 2.0], [-1.0, 0.4, 3.0], [0.05, 0.02, 10.0]])
        ours = self.LENS.view_to_pixels(pts)
        theirs, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), self.LENS.intrinsics, self.LENS.distortion)
        assert np.abs(ours - theirs.reshape(-1, 2)).max() < 1e-6

    def test_field_of_view_and_size(self):
        cam = CameraModel.from_fov(960, 540, 60.0)
        assert cam.hfov_deg == pytest.approx(60.0) and cam.fx == pytest.approx(480 / math.tan(math.radians(30)))
        half = self.LENS.scaled(640, 360)
        assert (half.fx, half.fy, half.cx, half.cy) == pytest.approx((579.3, 576.9, 334.9, 194.05))
        assert half.dist == self.LENS.dist and half.hfov_deg == pytest.approx(self.LENS.hfov_deg)
        with pytest.raises(ValueError, match="another aspect ratio"):
            self.LENS.scaled(640, 480)
        with pytest.raises(ValueError, match="10..170 degrees"):
            CameraModel.from_fov(960, 540, 200.0)


class TestCameraFile:
    def test_round_trip(self, tmp_path):
        cam = TestRealCameras.LENS
        save_camera_file(tmp_path / "c.json", cam, 0.42, "test")
        back = load_camera_file(tmp_path / "c.json")
        got = (back.width, back.height, back.fx, back.fy, back.cx, back.cy)
        assert got == (1280, 720, 1158.6, 1153.8, 669.8, 388.1)
        assert np.allclose(back.distortion, cam.distortion)

    @pytest.mark.parametrize("text,why", [
        ("{not json", "is not JSON"),
        ('{"format": "other"}', "format is 'other'"),
        ('{"format": "roadpilot-camera/1", "width": 640}', "lacks height, fx, fy, cx, cy, distortion"),
        ('{"format": "roadpilot-camera/1", "width": 640, "height": 480, "fx": -5, "fy": 500, "cx": 320, "cy": 240, '
         '"distortion": []}', "focal lengths"),
        ('{"format": "roadpilot-camera/1", "width": 640, "height": 480, "fx": 500, "fy": 500, "cx": 900, "cy": 240, '
         '"distortion": []}', "principal point (900, 240) lies outside"),
        ('{"format": "roadpilot-camera/1", "width": 640, "height": 480, "fx": 500, "fy": 500, "cx": 320, "cy": 240, '
         '"distortion": [0.1, 0.2, 0.3]}', "is not OpenCV's"),
        ('{"format": "roadpilot-camera/1", "width": 640, "height": 480, "fx": "NaN", "fy": 500, "cx": 320, "cy": 240, '
         '"distortion": []}', "not finite"),
    ])
    def test_a_file_that_is_not_a_camera_is_refused_with_the_reason(self, tmp_path, text, why):
        (tmp_path / "c.json").write_text(text)
        with pytest.raises(CameraFileError, match=re.escape(why)):
            load_camera_file(tmp_path / "c.json")
        with pytest.raises(CameraFileError, match="cannot read camera file"):
            load_camera_file(tmp_path / "missing.json")
