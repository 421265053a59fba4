"""gen_data stores targets in the true car frame; the model is trained on them as seen from the frame the
warp's calibration believes in (the 'believed' car frame B). For a sample warped with calibration
c = mount - err, B is turned from the true frame T by R_TB = R(mount) R(c)^T about the camera (points on the
road relative to the camera are (x, y, -h)). calibrationd inverts exactly this (selfdrive/locationd/calibration.py)."""

import glob
import os

import numpy as np

from common.transformations.camera import rot_zyx
from selfdrive.modeld.constants import CAMERA_HEIGHT, X_LINES


def rotation_tb(mount, err) -> np.ndarray:
    """R_TB for mount (pitch, yaw) and calibration error err (pitch, yaw), rad."""
    m = rot_zyx(float(mount[1]), float(mount[0]), 0.0)
    c = rot_zyx(float(mount[1] - err[1]), float(mount[0] - err[0]), 0.0)
    return m @ c.T


def to_b(points_t: np.ndarray, r_tb: np.ndarray) -> np.ndarray:
    """(..., 3) points of the true car frame -> the believed frame (rotation about the camera)."""
    cam = np.array([0.0, 0.0, CAMERA_HEIGHT])
    return (points_t - cam) @ r_tb + cam          # row vectors: (R^T p)^T = p^T R


def _lines_to_b(lines: np.ndarray, r_tb: np.ndarray) -> np.ndarray:
    """(..., len(X_LINES)) y at X_LINES (T) -> y at X_LINES in B."""
    flat = lines.reshape(-1, len(X_LINES))
    out = np.empty_like(flat)
    for i, y in enumerate(flat):
        p = to_b(np.stack([X_LINES, y, np.zeros_like(y)], axis=-1), r_tb)
        out[i] = np.interp(X_LINES, p[:, 0], p[:, 1])
    return out.reshape(lines.shape)


def episode_in_b(d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One gen_data episode with path (now x, y, z), lanes, edges and lead x in each sample's B frame."""
    out = dict(d)
    n = len(d["path"])
    path = np.zeros((n, d["path"].shape[1], 3), np.float32)
    lanes, edges, lead = d["lanes"].copy(), d["edges"].copy(), d["lead"].copy()
    for i in range(n):
        r = rotation_tb(d["mount"], d["calib"][i])
        p = d["path"][i]
        path[i] = to_b(np.stack([p[:, 0], p[:, 1], np.zeros(len(p))], axis=-1), r)
        if np.any(d["calib"][i] != 0):
            lanes[i] = _lines_to_b(d["lanes"][i], r)
            edges[i] = _lines_to_b(d["edges"][i], r)
            if lead[i, 2] > 0:
                lead[i, 0] = to_b(np.array([lead[i, 0], 0.0, 0.0]), r)[0]
    out.update(path=path, lanes=lanes, edges=edges, lead=lead)
    return out


KEYS = ("frames", "path", "lanes", "lane_present", "edges", "lead", "curvature", "calib", "scene")  # a sample


def load_split(data: str, split: str) -> tuple[dict[str, np.ndarray], list[tuple[str, int, int]]]:
    """All episodes of a gen_data split with their targets in the believed frame, concatenated, and (episode
    name, first sample, end sample) per episode. Raises SystemExit with a clear message when there are none."""
    if not os.path.isdir(data):
        raise SystemExit(f"data directory {data} does not exist: generate it with "
                         f"`python -m tools.train.gen_data --out {data} --config full`")
    files = sorted(glob.glob(os.path.join(data, split, "*.npz")))
    if not files:
        raise SystemExit(f"no episodes in {os.path.join(data, split)}: generate them with "
                         f"`python -m tools.train.gen_data --out {data} --splits {split}`")
    parts, spans, start = [], [], 0
    for f in files:
        with np.load(f) as z:
            ep = episode_in_b({k: z[k] for k in z.files})
        if "scene" not in ep:   # episodes written before pictures of no road existed: all roads
            ep["scene"] = np.ones(len(ep["frames"]), np.float32)
        parts.append(ep)
        n = len(ep["frames"])
        spans.append((os.path.splitext(os.path.basename(f))[0], start, start + n))
        start += n
    return {k: np.concatenate([p[k] for p in parts]) for k in KEYS}, spans


def load_splits(data: list[str], split: str) -> tuple[dict[str, np.ndarray], list[tuple[str, int, int]]]:
    """load_split of several gen_data folders, one after the other (episode spans shifted to match)."""
    parts, spans, start = [], [], 0
    for d in data:
        t, sp = load_split(d, split)
        parts.append(t)
        spans += [(name, lo + start, hi + start) for name, lo, hi in sp]
        start += len(t["frames"])
    return {k: np.concatenate([p[k] for p in parts]) for k in KEYS}, spans


# How much more often a sample in a corner is drawn: weight 1 + CORNER_BOOST * min(k / CORNER_K, 1), k the largest
# curvature its path bends with over 10-40 m ahead. Corners tighter than 70 m are ~1% of the samples of `full`.
CORNER_K, CORNER_BOOST = 0.015, 3.0


def corner_weights(path: np.ndarray) -> np.ndarray:
    """(n,) sampling weights from (n, NT, 3) path targets: y ~ k x^2 / 2 where the path is 10-40 m ahead."""
    x, y = path[..., 0], path[..., 1]
    far = (x >= 10.0) & (x <= 40.0)
    k = np.where(far, 2.0 * np.abs(y) / np.maximum(x, 1.0) ** 2, 0.0).max(axis=1)
    return 1.0 + CORNER_BOOST * np.minimum(k / CORNER_K, 1.0)
