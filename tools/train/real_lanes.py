"""The real-frame development set: dash-camera frames from ../shared/data with their ego lane lines labelled by a
method that never looks at the model, and the geometry to compare a model with them.

The labels live in tools/train/real_lanes.json. Each labelled line starts from a guide drawn by eye (a few (u, v)
points along the paint, `guide`); `python -m tools.train.real_lanes --relabel` then measures the paint itself: on
every ROW_STEP-th row, inside a window around the guide, the centroid of the pixels that stand out from the road as
white or yellow paint, then drops the rows that leave a smooth fit through the others (a car's edge, a crack). Rows
where a dashed line has a gap get no point: a label is paint that was seen. `--overlays DIR` draws guides and points
on each frame for checking by eye; every frame was checked that way before its labels were kept.

Frames are never used for training (nothing in tools/train reads this file but the evaluation).
"""

import argparse
import json
import math
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from common.transformations.camera import CameraModel

HERE = Path(__file__).parent
LABELS_PATH = HERE / "real_lanes.json"
DATA_ROOT = HERE.parents[1].parent / "shared" / "data"

ROW_STEP = 4          # px between labelled rows
PAINT_MIN = 28.0      # how much brighter (white) or yellower than the road around it a pixel must be to be paint
WINDOW_GAIN = 0.11    # the search window's half-width grows with the distance below the horizon...
WINDOW_MIN = 6.0      # ...and is at least this many px
FIT_TOL = 3.0         # px (+ 1% of the distance below the horizon) a point may leave the smooth fit


def load_labels() -> dict:
    return json.loads(LABELS_PATH.read_text())


def camera_of(source: dict, width: int, height: int) -> CameraModel:
    """The labelled frame's camera: a source's stated intrinsics (focal, principal point) or field of view."""
    if "focal" in source:
        return CameraModel(width, height, float(source["focal"]), principal=tuple(source["principal"]))
    return CameraModel.from_fov(width, height, float(source["hfov_deg"]))


def read_frame(frame: dict, root: Path = DATA_ROOT) -> np.ndarray:
    """The labelled frame as BGR uint8 (a still image, or frame `index` of a video)."""
    path = root / frame["file"]
    if "index" not in frame:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"cannot read {path}")
        return img
    import av  # only videos need it
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i == frame["index"]:
                return f.to_ndarray(format="bgr24")
    raise FileNotFoundError(f"{path} has no frame {frame['index']}")


def vanishing_mount(lines: dict[str, list], cam: CameraModel) -> tuple[float, float]:
    """(pitch, yaw) of a camera whose straight left and right lines (lists of (u, v)) meet where they do: the
    crossing of straight fits u = a + b v is the vanishing point of the road ahead."""
    (al, bl), (ar, br) = (np.polyfit(np.array(lines[s])[:, 1], np.array(lines[s])[:, 0], 1)[::-1]
                          for s in ("left", "right"))
    v = (ar - al) / (bl - br)
    u = al + bl * v
    x, y = (u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy
    pitch = math.atan(-y)
    return pitch, math.atan(x * math.cos(pitch))


def source_mount(labels: dict, source: str) -> tuple[float, float]:
    """A source's camera mount (pitch, yaw): the mean over its frames marked `straight` of the labelled lines'
    vanishing point (what calibrationd converges to, found without the model)."""
    src = labels["sources"][source]
    frames = [f for f in labels["frames"].values() if f["source"] == source and f.get("straight")]
    if not frames:
        raise ValueError(f"source {source} has no straight frame to read its mount from")
    cam = camera_of(src, *src["size"])
    return tuple(np.mean([vanishing_mount(f["lines"], cam) for f in frames], axis=0))


def paint_score(bgr: np.ndarray) -> np.ndarray:
    """Per pixel, how much like paint: the larger of its brightness and its yellowness (float32)."""
    f = bgr.astype(np.float32)
    luma = 0.114 * f[..., 0] + 0.587 * f[..., 1] + 0.299 * f[..., 2]
    yellow = 0.5 * (f[..., 1] + f[..., 2]) - f[..., 0]
    return np.stack((luma, yellow), -1)


def measure_line(bgr: np.ndarray, guide: list, horizon_v: float) -> list[list[float]]:
    """[(u, v)] paint centroids along a guide polyline (see the module docstring)."""
    g = np.array(guide, dtype=float)
    g = g[np.argsort(g[:, 1])]
    score = paint_score(bgr)
    pts = []
    v0 = int(math.ceil(g[0, 1] / ROW_STEP) * ROW_STEP)
    for v in range(v0, min(int(g[-1, 1]), bgr.shape[0] - 1) + 1, ROW_STEP):
        uc = float(np.interp(v, g[:, 1], g[:, 0]))
        hw = max(WINDOW_MIN, WINDOW_GAIN * (v - horizon_v))
        lo, hi = max(int(uc - 3 * hw), 0), min(int(uc + 3 * hw) + 1, bgr.shape[1])
        row = score[v, lo:hi]                        # the road around the window sets the background
        excess = (row - np.median(row, axis=0)).max(axis=1)
        wlo, whi = max(int(uc - hw) - lo, 0), min(int(uc + hw) + 1 - lo, hi - lo)
        w = np.clip(excess[wlo:whi] - PAINT_MIN, 0.0, None)
        if np.count_nonzero(w) >= 2:
            pts.append([round(float(lo + wlo + (w * np.arange(len(w))).sum() / w.sum()), 1), v])
    if len(pts) >= 4:   # drop what leaves a smooth (quadratic) line through the rest
        p = np.array(pts)
        fit = np.polyval(np.polyfit(p[:, 1], p[:, 0], 2), p[:, 1])
        keep = np.abs(p[:, 0] - fit) <= FIT_TOL + 0.01 * (p[:, 1] - horizon_v)
        pts = p[keep].tolist()
    return pts


def relabel(labels: dict) -> dict:
    """Measures every frame's lines again from their guides (frames with points but no guide keep theirs)."""
    for name, fr in labels["frames"].items():
        guides = fr.get("guides")
        if not guides:
            continue
        img = read_frame(fr)
        fr["lines"] = {side: measure_line(img, g, fr["horizon_v"]) for side, g in guides.items()}
        print(f"{name}: " + ", ".join(f"{s} {len(p)} points" for s, p in fr["lines"].items()))
    return labels


def draw_overlay(img: np.ndarray, fr: dict, lines_px: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Guides (thin grey), labelled points (green) and, when given, a model's lines (red) on a copy of the frame."""
    out = img.copy()
    for g in (fr.get("guides") or {}).values():
        cv2.polylines(out, [np.round(np.array(g)).astype(np.int32)], False, (160, 160, 160), 1)
    for pts in fr["lines"].values():
        for u, v in pts:
            cv2.circle(out, (int(round(u)), int(v)), 2, (0, 220, 0), -1)
    for pts in (lines_px or {}).values():
        if len(pts) >= 2:
            cv2.polylines(out, [np.round(pts).astype(np.int32)], False, (0, 0, 255), 1)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="The real-frame lane labels (tools/train/real_lanes.json): measure "
                                             "them again from their guides and/or draw them for checking by eye.")
    ap.add_argument("--relabel", action="store_true", help="measure the lines from the guides and rewrite the file")
    ap.add_argument("--overlays", metavar="DIR", help="write one PNG per frame with guides and labelled points")
    args = ap.parse_args(argv)
    if not DATA_ROOT.is_dir():
        print(f"error: {DATA_ROOT} (../shared/data beside the checkout) is not here", file=sys.stderr)
        return 2
    labels = load_labels()
    if args.relabel:
        labels = relabel(labels)
        LABELS_PATH.write_text(json.dumps(labels, indent=1) + "\n")
    if args.overlays:
        os.makedirs(args.overlays, exist_ok=True)
        for name, fr in labels["frames"].items():
            cv2.imwrite(os.path.join(args.overlays, f"{name}.png"), draw_overlay(read_frame(fr), fr))
        print(f"overlays in {args.overlays}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
