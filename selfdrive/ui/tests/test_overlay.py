"""The overlay's geometry against pinhole-camera arithmetic done by hand, and its handling of bad model output."""

import json
import math

import cv2
import numpy as np
import pytest

from cereal import messaging
from common.transformations.camera import calibrated_camera, project_car_points
from selfdrive.ui.overlay import LEAD_MIN_PROB, PATH_HALF_WIDTH, build_overlay
from selfdrive.ui.tests.stack import Scene, fill_model

F, CX, CY, H = 910.0, 582.0, 437.0, 1.22


def ground_pixel(x: float, y: float, pitch: float = 0.0, h: float = H, f: float = F, cx: float = CX,
                 cy: float = CY) -> tuple[float, float]:
    """A road point (x ahead, y left) seen by a camera h above it, pitched down by `pitch`, worked out by hand:
    depth along the optical axis x cos + h sin, height below it h cos - x sin, and y to the left."""
    depth = x * math.cos(pitch) + h * math.sin(pitch)
    return cx - f * y / depth, cy + f * (h * math.cos(pitch) - x * math.sin(pitch)) / depth


def model(sc: Scene | None = None):
    msg = messaging.new_message("modelV2")
    fill_model(msg.modelV2, sc or Scene(), 7)
    return msg.modelV2


class TestProjection:
    @pytest.mark.parametrize("x, y", [(20.0, 0.0), (20.0, 1.5), (8.0, -2.0), (60.0, 3.7)])
    @pytest.mark.parametrize("pitch", [0.0, 0.03, -0.05])
    def test_road_points_land_where_a_pinhole_camera_puts_them(self, x, y, pitch):
        px, depth = project_car_points(calibrated_camera([0.0, pitch, 0.0]), [[x, y, 0.0]])
        assert px[0] == pytest.approx(ground_pixel(x, y, pitch), abs=1e-6)
        assert depth[0] == pytest.approx(x * math.cos(pitch) + H * math.sin(pitch))

    def test_yaw_left_moves_the_far_road_right(self):
        px, _ = project_car_points(calibrated_camera([0.0, 0.0, 0.05]), [[1e5, 0.0, 0.0]])
        assert px[0, 0] == pytest.approx(CX + F * math.tan(0.05), abs=0.1)

    def test_roll_right_side_down_tilts_the_horizon(self):
        # rolled right side down, the horizon's right end rises on the picture (smaller v)
        px, _ = project_car_points(calibrated_camera([0.05, 0.0, 0.0]), [[1e5, -1e4, 0.0], [1e5, 1e4, 0.0]])
        right, left = px
        assert right[1] < CY < left[1]

    def test_calibration_height_and_bad_values(self):
        assert project_car_points(calibrated_camera([0, 0, 0], 1.5), [[20.0, 0, 0]])[0][0][1] == \
            pytest.approx(CY + F * 1.5 / 20)
        for bad in ([math.nan, math.inf, -math.inf], [], [10.0, 10.0, 10.0]):
            assert calibrated_camera(bad) == calibrated_camera([0, 0, 0])
        assert calibrated_camera([0, 0, 0], math.nan).cam_height == H
        assert calibrated_camera([0, 0, 0], 40.0).cam_height == H

    def test_points_behind_the_camera_have_no_pixel(self):
        px, depth = project_car_points(calibrated_camera([0, 0, 0]), [[-5.0, 0, 0], [0.0, 1.0, 0.0]])
        assert np.isnan(px).all() and (depth <= 0).all()


class TestOverlay:
    def test_path_band_covers_the_projected_path_and_has_its_width(self):
        sc = Scene()
        ov = build_overlay(model(sc), sc.rpy, sc.cam_height)
        band = np.array(ov["path"], dtype=np.float32)
        for x in (5.0, 15.0, 30.0):
            u, v = ground_pixel(x, float(sc.path_y(x)), sc.rpy[1])
            assert cv2.pointPolygonTest(band, (u, v), True) > 0, f"path centre at {x} m not inside the band"
            # just outside the band's edge (the path runs nearly straight ahead here): outside the polygon
            u_out, v_out = ground_pixel(x, float(sc.path_y(x)) - PATH_HALF_WIDTH * 1.3, sc.rpy[1])
            assert cv2.pointPolygonTest(band, (u_out, v_out), False) < 0
        mirrored = ground_pixel(15.0, -float(sc.path_y(15.0)), sc.rpy[1])
        assert cv2.pointPolygonTest(band, mirrored, False) < 0

    def test_lanes_edges_and_lead(self):
        sc = Scene()
        ov = build_overlay(model(sc), sc.rpy, sc.cam_height)
        assert (ov["width"], ov["height"]) == (1164, 874)
        assert [ln["prob"] for ln in ov["lanes"]] == pytest.approx(list(sc.lane_probs))
        assert all(len(ln["pts"]) > 20 for ln in ov["lanes"]) and len(ov["edges"]) == 2
        lead = ov["lead"]
        assert (lead["u"], lead["v"]) == pytest.approx(ground_pixel(35.0, float(sc.path_y(35.0)), sc.rpy[1]), abs=0.1)
        assert lead["dist"] == 35.0 and lead["prob"] == 0.95
        json.dumps(ov, allow_nan=False)  # what uid sends: strict JSON

    def test_unlikely_or_missing_lead_is_not_drawn(self):
        m = model(Scene(lead_x=None))
        assert build_overlay(m)["lead"] is None
        msg = messaging.new_message("modelV2")
        fill_model(msg.modelV2, Scene(), 0)
        msg.modelV2.leads[0].prob = LEAD_MIN_PROB - 0.01
        assert build_overlay(msg.modelV2)["lead"] is None
        for bad in (math.nan, math.inf):
            msg.modelV2.leads[0].prob = bad
            assert build_overlay(msg.modelV2)["lead"] is None
        msg.modelV2.leads[0].prob = 0.9
        msg.modelV2.leads[0].x = [-3.0]  # behind the camera: nowhere on the picture
        assert build_overlay(msg.modelV2)["lead"] is None

    def test_bad_model_output_draws_less_never_garbage(self):
        msg = messaging.new_message("modelV2")
        md = msg.modelV2
        pos = md.init("position")
        pos.x = [0.0, 5.0, math.nan, 20.0, math.inf, 40.0, 1e9]
        pos.y = [0.0, 0.0, 0.0, 0.0, 0.0]          # shorter than x: only the common length counts
        lanes = md.init("laneLines", 2)
        lanes[0].x, lanes[0].y = [5.0, 10.0], [1.0]  # one usable point: no band
        md.laneLineProbs = [math.nan]              # fewer probabilities than lines, and a NaN
        leads = md.init("leads", 1)
        leads[0].x, leads[0].y, leads[0].prob = [math.nan], [0.0], 1.0
        ov = build_overlay(md, [math.nan, 0.0, 0.0], math.inf)
        json.dumps(ov, allow_nan=False)
        assert 0 < len(ov["path"]) <= 2 * 3 and ov["lanes"] == [{"pts": [], "prob": 0.0}, {"pts": [], "prob": 0.0}]
        assert ov["lead"] is None
        empty = build_overlay(messaging.new_message("modelV2").modelV2)
        assert empty["path"] == [] and empty["lanes"] == [] and empty["edges"] == [] and empty["lead"] is None
