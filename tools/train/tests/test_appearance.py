"""tools/train/appearance.py and the real-road data configs of gen_data (issue 18)."""

import math
from dataclasses import replace

import numpy as np

from selfdrive.modeld.constants import CAMERA_HEIGHT, MODEL_H, MODEL_W
from tools.sim.lib.dynamics import VehicleState
from tools.sim.lib.renderer import Look, Renderer
from tools.sim.lib.scenarios import make_world
from tools.train.appearance import (
    HFOV_DEG,
    ROLL_MAX,
    Artefacts,
    lens_is_monotonic,
    not_road_frames,
    random_camera,
)
from tools.train.gen_data import CONFIGS, episodes, not_road_episode, run_episode


def test_random_cameras_span_the_fields_of_view_and_lenses_of_real_ones():
    rng = np.random.default_rng(0)
    cams = [random_camera(rng, 0.01, -0.02) for _ in range(300)]
    fov = np.array([c.hfov_deg for c in cams])
    assert HFOV_DEG[0] - 3 < fov.min() < HFOV_DEG[0] + 5 and HFOV_DEG[1] - 5 < fov.max() < HFOV_DEG[1] + 3
    assert 0.25 < np.mean([c.distorted for c in cams]) < 0.55
    assert len({(c.width, c.height) for c in cams}) >= 4 and all(c.width % 2 == 0 == c.height % 2 for c in cams)
    assert all(abs(c.roll) <= ROLL_MAX and c.cam_height == CAMERA_HEIGHT for c in cams)
    assert all(c.pitch == 0.01 and c.yaw == -0.02 for c in cams)


def test_every_drawn_lens_can_be_undone_by_the_renderer():
    # a strong barrel lens on a wide camera folds its rim back (no inverse): the renderer's canvas for it was
    # terabytes and the data generation died; such draws are softened until the lens is monotonic
    rng = np.random.default_rng(11)
    cams = [random_camera(rng, 0.0, 0.0) for _ in range(400)]
    lenses = [c for c in cams if c.distorted]
    assert len(lenses) > 100
    for c in lenses:
        corner = math.hypot(max(c.cx, c.width - c.cx) / c.fx, max(c.cy, c.height - c.cy) / c.fy)
        assert lens_is_monotonic(tuple(c.dist), corner)
    assert not lens_is_monotonic((-0.32, -0.04), 1.36)      # what a 95 deg camera drew before
    widest = max(lenses, key=lambda c: c.hfov_deg)
    canvas = Renderer(camera=widest).canvas_cam
    assert canvas.width < 3 * widest.width and canvas.height < 3 * widest.height


def test_artefacts_are_repeatable_and_a_seam_is_a_dark_line_on_an_otherwise_untouched_picture():
    cam = random_camera(np.random.default_rng(1), 0.0, 0.0)
    flat = np.full((cam.height, cam.width), 128, np.uint8)
    seam = Artefacts(seed=5, seams=1)
    out = seam.apply(flat, cam)
    assert np.array_equal(out, seam.apply(flat, cam))          # the previous and the current frame match
    dark = out < 110
    assert 0 < dark.mean() < 0.02 and (out <= 128).all()
    rows = np.nonzero(dark.any(axis=1))[0]
    assert rows.max() == cam.height - 1 and rows.min() > cam.height * 0.3   # from below the horizon to the bottom
    assert np.array_equal(Artefacts(seed=5).apply(flat, cam), flat)         # no artefact, no change


def test_every_kind_of_artefact_changes_the_picture():
    cam = random_camera(np.random.default_rng(2), 0.0, 0.0)
    img = np.random.default_rng(3).integers(60, 200, (cam.height, cam.width)).astype(np.uint8)
    for kw in ({"shadows": 2}, {"cracks": 3}, {"glare": 0.5}, {"drops": 10}, {"motion": 5}, {"jpeg": 20}):
        assert not np.array_equal(Artefacts(seed=1, **kw).apply(img, cam), img), kw


def test_not_road_pictures_are_model_frames_of_many_kinds():
    rng = np.random.default_rng(4)
    frames = [not_road_frames(rng) for _ in range(40)]
    assert all(f.shape == (2, MODEL_H, MODEL_W) and f.dtype == np.uint8 for f in frames)
    assert len({round(float(f.std()), 1) for f in frames}) > 20


def test_a_road_without_paint_has_no_line_to_see():
    world = make_world("highway", seed=3)
    ego = VehicleState(x=50.0, y=world.road.lane_center_offset(0), yaw=0.0, vx=25.0)
    look = Look.plain()
    bright = {}
    for paint in (True, False):
        y = Renderer(look=replace(look, paint=paint)).render(world, ego)[:874]
        bright[paint] = int((y[500:] > y[700, 582] + 40).sum())   # brighter than the asphalt ahead
    assert bright[True] > 2000 and bright[False] < 0.02 * bright[True]


def test_real_road_configs_are_apart_from_each_other_and_the_closed_loop_seeds():
    seen = set()
    for name in ("full", "corners", "real", "real_corners", "no_paint", "not_road"):
        eps = set(episodes(CONFIGS[name]))
        assert not eps & seen, name
        seen |= eps
        assert all(seed < 300000 for _, _, seed in eps)


def test_no_paint_and_not_road_episodes_say_there_is_no_line():
    d = run_episode("train", "suburban", 6000, 0.9, varied=True, paint=False)
    assert d["frames"].shape == (3, 2, MODEL_H, MODEL_W) and not d["lane_present"].any() and d["scene"].all()
    assert np.isfinite(d["path"]).all() and d["path"][0, -1, 0] > 10.0    # the path is still learnt from
    n = not_road_episode(7000, 0.9)
    assert len(n["frames"]) == 3 and not n["scene"].any() and not n["lane_present"].any() and not n["lead"].any()
    assert math.isclose(float(n["frames"].std()), float(not_road_episode(7000, 0.9)["frames"].std()))
