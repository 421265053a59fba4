"""The real-frame development set (tools/train/real_lanes.json) and the evaluation on it (evaluate_real.py)."""

import json

import numpy as np
import pytest

from common.transformations.camera import Pose, calibrated_camera
from selfdrive.modeld.constants import X_LINES
from selfdrive.modeld.tests.onnx_models import contract_outputs, write_model
from tools.train import evaluate_real
from tools.train.real_lanes import (
    DATA_ROOT,
    PAINT_MIN,
    camera_of,
    load_labels,
    measure_line,
    paint_score,
    read_frame,
    source_mount,
)

LABELS = load_labels()
needs_data = pytest.mark.skipif(not DATA_ROOT.is_dir(), reason=f"{DATA_ROOT} (../shared/data) is not here")


def _excess_at(img: np.ndarray, pts: list) -> np.ndarray:
    """How much each labelled point stands out as paint from the row around it (the labelling's own measure)."""
    score = paint_score(img)
    out = []
    for u, v in pts:
        u, v = int(round(u)), int(v)
        row = score[v, max(u - 40, 0):u + 41]
        out.append((score[v, u] - np.median(row, axis=0)).max())
    return np.array(out)


def test_every_frame_labels_both_ego_lines_inside_its_picture():
    for name, fr in LABELS["frames"].items():
        w, h = LABELS["sources"][fr["source"]]["size"]
        assert set(fr["lines"]) == {"left", "right"}, name
        for side, pts in fr["lines"].items():
            p = np.array(pts)
            assert len(p) >= 8, (name, side)
            assert (p[:, 0] >= 0).all() and (p[:, 0] < w).all() and (p[:, 1] > fr["horizon_v"]).all(), (name, side)
        left, right = (np.array(fr["lines"][s]) for s in ("left", "right"))
        rows = np.intersect1d(left[:, 1], right[:, 1])
        for v in rows:   # the left line is left of the right one on every row both have
            assert left[left[:, 1] == v, 0][0] < right[right[:, 1] == v, 0][0], (name, v)


@needs_data
def test_the_labels_sit_on_paint():
    for name, fr in LABELS["frames"].items():
        img = read_frame(fr)
        for side, pts in fr["lines"].items():
            excess = _excess_at(img, pts)
            assert np.mean(excess > 0.5 * PAINT_MIN) >= 0.9, (name, side, np.round(excess, 1))
            # and a few pixels aside is road, not paint: a label shifted sideways would fail here
            shifted = _excess_at(img, [[u + 12.0, v] for u, v in pts])
            assert np.median(shifted) < np.median(excess) - 0.5 * PAINT_MIN, (name, side)


@needs_data
def test_measured_labels_are_reproduced_from_their_guides():
    for name, fr in LABELS["frames"].items():
        if not fr.get("guides"):
            continue
        img = read_frame(fr)
        for side, guide in fr["guides"].items():
            assert measure_line(img, guide, fr["horizon_v"]) == fr["lines"][side], (name, side)


def _on_road(cam, pts: np.ndarray) -> np.ndarray:
    """Pixels (n, 2) of an undistorted camera -> (n, 2) (x, y) on the road in modelV2's car frame."""
    r, t = cam.view_from_world(Pose(-cam.forward, 0.0))
    centre = -r.T @ t
    rays = np.stack(((pts[:, 0] - cam.cx) / cam.fx, (pts[:, 1] - cam.cy) / cam.fy, np.ones(len(pts))), -1) @ r
    s = -centre[2] / rays[:, 2]
    return centre[:2] + s[:, None] * rays[:, :2]


def test_a_model_that_draws_the_labelled_lines_scores_under_a_pixel():
    """The measurement itself: lines sampled from the labels (projected onto the road, read at the model's 5-60 m)
    come back onto the labelled pixels, on every frame and both sources' mounts."""
    mounts = {s: source_mount(LABELS, s) for s in LABELS["sources"]}
    assert np.degrees(mounts["udacity"][0]) == pytest.approx(-2.32, abs=0.05)
    errs = []
    for fr in LABELS["frames"].values():
        src = LABELS["sources"][fr["source"]]
        cam = camera_of(src, *src["size"])
        rpy = (0.0, *mounts[fr["source"]])
        for pts in fr["lines"].values():
            xy = _on_road(calibrated_camera(rpy, None, cam), np.array(pts, dtype=float))
            order = np.argsort(xy[:, 0])
            ys = np.interp(X_LINES, xy[order, 0], xy[order, 1])   # held flat beyond the labelled range
            near, far, _ = evaluate_real.row_errors(pts, evaluate_real.line_pixels(ys, cam, rpy))
            assert len(near) and len(far)
            errs.append(np.concatenate((near, far)))
    # between the model's samples (5, 10, ... 60 m) a curved line is read off a straight segment: not quite exact
    errs = np.concatenate(errs)
    print(f"median {np.median(errs):.2f} px, p90 {np.percentile(errs, 90):.2f} px over {len(errs)} rows")
    assert np.median(errs) < 0.5 and np.percentile(errs, 90) < 1.5


@needs_data
def test_paint_removed_frames_have_no_paint_left_on_the_labels():
    for name, fr in LABELS["frames"].items():
        if "index" in fr:
            continue
        clean = evaluate_real.paint_removed(read_frame(fr), fr["horizon_v"])
        for side, pts in fr["lines"].items():
            assert np.mean(_excess_at(clean, pts) > PAINT_MIN) < 0.1, (name, side)


@needs_data
def test_a_model_that_always_sees_lines_is_refused_by_check(tmp_path, capsys):
    out = contract_outputs()
    out["lane_prob"] = np.full_like(out["lane_prob"], 0.99)
    model = write_model(str(tmp_path / "always.onnx"), out)
    assert evaluate_real.main(["--model", model, "--out", str(tmp_path / "ev"), "--check"]) == 2
    m = json.loads((tmp_path / "ev" / "real_metrics.json").read_text())
    assert m["grey_prob_max"] == pytest.approx(0.99) and m["not_road_false_positive_rate"] == 1.0
    assert m["detection_rate"] == 1.0 and m["frames"] == len(LABELS["frames"])
    assert not m["acceptance"]["grey frame: highest lane_prob"]["met"]
    assert "MISSED" in capsys.readouterr().out
    # a straight 3.6 m lane drawn on curves and on a 1164-px camera misses the labels by more than any bound
    assert m["near_px_median"] > 15.0


def test_no_data_is_a_clear_error(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(evaluate_real, "DATA_ROOT", tmp_path / "missing")
    assert evaluate_real.main([]) == 2
    assert "is not here" in capsys.readouterr().err


@needs_data
def test_a_missing_model_is_a_clear_error(capsys, tmp_path):
    assert evaluate_real.main(["--model", str(tmp_path / "none.onnx")]) == 2
    assert "model file not found" in capsys.readouterr().err
