"""roadpilot calibrate-camera on real chessboard photos (../shared/data/carnd-camera-cal) and on boards drawn by a
known camera."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from common.transformations.camera import CameraModel
from common.transformations.camera_file import load_camera_file
from tools.camera import calibrate
from tools.sim.lib.chessboard import board_poses, render_chessboard

CARND = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "carnd-camera-cal"
# a camera unlike the default one: 70 deg, principal point off centre, barrel distortion
KNOWN = dataclasses.replace(CameraModel.from_fov(1164, 874, 70.0), principal=(600.0, 420.0), dist=(-0.2, 0.05))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.cli", "calibrate-camera", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not CARND.is_dir(), reason="../shared/data/carnd-camera-cal is not beside the checkout")
def test_real_photos_every_full_board_found_the_misfit_named_and_rms_below_a_pixel(tmp_path):
    out = tmp_path / "camera.json"
    r = run_cli(str(CARND), "--out", str(out))
    print(r.stdout, r.stderr)
    assert r.returncode == 0, r.stderr
    # the three boards cut off by the frame edge are named, with that reason
    for name in ("calibration1.jpg", "calibration4.jpg", "calibration5.jpg"):
        assert f"rejected {name}: no full 9x6 grid" in r.stdout
    assert "boards: 20 photos, 17 with the board found, 16 used, 4 rejected" in r.stdout
    # calibration15's corners sit 2.4 px off the camera every other board agrees on
    assert "rejected calibration15.jpg: corners do not fit" in r.stdout
    assert "calibration7.jpg: 1281x721, cropped to 1280x720" in r.stdout
    cam = load_camera_file(out)
    saved = json.loads(out.read_text())
    assert saved["rms_px"] < 1.0 and saved["how"] == "chessboard: 16 of 20 photos used"
    assert (cam.width, cam.height) == (1280, 720)
    # a wide dash-cam lens with visible barrel distortion: ~58 deg through fx, k1 clearly negative
    assert 50.0 < cam.hfov_deg < 65.0 and cam.distortion[0] < -0.15
    assert abs(cam.fx / cam.fy - 1.0) < 0.02 and abs(cam.cx - 640) < 60 and abs(cam.cy - 360) < 60


def test_boards_drawn_by_a_known_camera_give_back_its_focal_length_within_1_percent(tmp_path):
    for i, pose in enumerate(board_poses(15, seed=1)):
        cv2.imwrite(str(tmp_path / f"board{i}.png"), render_chessboard(KNOWN, **pose))
    out = tmp_path / "camera.json"
    r = run_cli(str(tmp_path), "--out", str(out))
    assert r.returncode == 0, r.stderr
    cam = load_camera_file(out)
    assert abs(cam.fx / KNOWN.fx - 1) < 0.01 and abs(cam.fy / KNOWN.fy - 1) < 0.01, (cam, KNOWN)
    assert abs(cam.cx - KNOWN.cx) < 5 and abs(cam.cy - KNOWN.cy) < 5
    # the lens: points far off the axis land where the known camera puts them, within 2 px
    ray = np.array([[0.4, 0.3, 1.0], [-0.4, -0.3, 1.0]])  # 2/3 of the way to the corners, where boards reached
    assert np.abs(cam.view_to_pixels(ray) - KNOWN.view_to_pixels(ray)).max() < 2.0


def test_a_board_from_another_camera_is_rejected_as_not_fitting(tmp_path):
    poses = board_poses(9, seed=2)
    for i, pose in enumerate(poses[:8]):
        cv2.imwrite(str(tmp_path / f"a{i}.png"), render_chessboard(KNOWN, **pose))
    other = dataclasses.replace(KNOWN, focal=KNOWN.fx * 1.4, dist=(0.15,))
    cv2.imwrite(str(tmp_path / "stranger.png"), render_chessboard(other, **poses[8]))
    res = calibrate.from_photos([str(tmp_path)], (9, 6), log=lambda *_: None)
    assert [name for name, _ in res.rejected] == ["stranger.png"]
    assert len(res.used) == 8 and res.rms_px < 0.5


def test_live_boards_from_a_video_calibrate_the_camera(tmp_path):
    video = tmp_path / "wave.avi"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (KNOWN.width, KNOWN.height), isColor=False)
    for pose in board_poses(16, seed=3):
        for _ in range(2):  # each view held a moment: taken once
            vw.write(render_chessboard(KNOWN, **pose))
    vw.release()
    out = tmp_path / "camera.json"
    r = run_cli("--live", str(video), "--frames", "10", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("board taken") == 10
    assert abs(load_camera_file(out).fx / KNOWN.fx - 1) < 0.01


def test_photos_that_cannot_calibrate_are_refused_in_one_line_and_nothing_is_written(tmp_path):
    for i, pose in enumerate(board_poses(3, seed=4)):
        cv2.imwrite(str(tmp_path / f"b{i}.png"), render_chessboard(KNOWN, **pose))
    (tmp_path / "notes.jpg").write_text("not a picture")
    out = tmp_path / "camera.json"
    cases = [
        ((str(tmp_path), "--out", str(out)), "only 3 usable boards of 4 photos; at least 5 are needed"),
        ((str(tmp_path / "missing"), "--out", str(out)), "no such file or folder"),
        ((str(tmp_path), "--board", "9by6", "--out", str(out)), "--board wants the inner corners"),
        ((str(tmp_path), "--out", str(tmp_path / "no" / "camera.json")), "does not exist"),
        (("--out", str(out)), "give either photos or --live CAMERA"),
        (("--live", str(tmp_path / "nothing.mp4"), "--out", str(out)), "cannot open camera or video"),
    ]
    for args, why in cases:
        r = run_cli(*args)
        assert r.returncode == 2 and why in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 or "usage:" in r.stderr, r.stderr
    assert not out.exists()
