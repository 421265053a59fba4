"""A printed chessboard photographed by a camera model: the known-answer input for `roadpilot calibrate-camera`.

The board is drawn square by square through CameraModel.view_to_pixels (lens distortion included: each square's
edges are subdivided so they bend as a real lens bends them), so a calibration of these pictures must give back the
camera that drew them."""

import cv2
import numpy as np

from common.transformations.camera import CameraModel, rot_zyx

EDGE_STEPS = 8  # points per square edge: enough for a distorted edge to bend smoothly


def board_view_points(pts_board: np.ndarray, distance: float, yaw: float, pitch: float, roll: float,
                      shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Board-plane points (..., 2) in metres, centred on the board, to view coordinates (x right, y down, z forward):
    the board faces the camera at `distance` m, turned by (yaw, pitch, roll) rad and moved `shift` m sideways/down."""
    r = rot_zyx(yaw, pitch, roll)
    p = np.concatenate([pts_board, np.zeros(pts_board.shape[:-1] + (1,))], -1)
    return p @ r.T + np.array([shift[0], shift[1], distance])


def render_chessboard(cam: CameraModel, inner: tuple[int, int] = (9, 6), square_m: float = 0.04,
                      distance: float = 0.6, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0,
                      shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """A grey (height, width) uint8 picture of a white page with a chessboard of `inner` (cols, rows) inner corners."""
    cols, rows = inner[0] + 1, inner[1] + 1
    img = np.full((cam.height, cam.width), 70, np.uint8)  # the room behind the page
    margin = square_m
    w_m, h_m = cols * square_m, rows * square_m
    page = np.array([[-w_m / 2 - margin, -h_m / 2 - margin], [w_m / 2 + margin, -h_m / 2 - margin],
                     [w_m / 2 + margin, h_m / 2 + margin], [-w_m / 2 - margin, h_m / 2 + margin]])
    _fill(img, cam, page, distance, yaw, pitch, roll, shift, 235)
    for i in range(cols):
        for j in range(rows):
            if (i + j) % 2:
                continue
            x0, y0 = -w_m / 2 + i * square_m, -h_m / 2 + j * square_m
            sq = np.array([[x0, y0], [x0 + square_m, y0], [x0 + square_m, y0 + square_m], [x0, y0 + square_m]])
            _fill(img, cam, sq, distance, yaw, pitch, roll, shift, 25)
    return cv2.GaussianBlur(img, (3, 3), 0.7)  # a lens is never perfectly sharp; corners need a gradient


def _fill(img: np.ndarray, cam: CameraModel, quad: np.ndarray, distance: float, yaw: float, pitch: float,
          roll: float, shift: tuple[float, float], value: int) -> None:
    t = np.linspace(0.0, 1.0, EDGE_STEPS, endpoint=False)[:, None]
    edges = np.concatenate([quad[k] + t * (quad[(k + 1) % 4] - quad[k]) for k in range(4)])
    pix = cam.view_to_pixels(board_view_points(edges, distance, yaw, pitch, roll, shift))
    if not np.isfinite(pix).all():
        return
    cv2.fillPoly(img, [np.round(pix * 16).astype(np.int32)], int(value), lineType=cv2.LINE_AA, shift=4)


def board_poses(n: int, seed: int = 0) -> list[dict]:
    """`n` varied, fully visible-ish board poses (as a person waving a board in front of a camera would)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        out.append({"distance": float(rng.uniform(0.45, 0.8)), "yaw": float(rng.uniform(-0.5, 0.5)),
                    "pitch": float(rng.uniform(-0.45, 0.45)), "roll": float(rng.uniform(-0.3, 0.3)),
                    "shift": (float(rng.uniform(-0.08, 0.08)), float(rng.uniform(-0.05, 0.05)))})
    return out

