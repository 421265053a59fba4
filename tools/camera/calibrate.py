"""calibrate-camera: a camera file (intrinsics + lens distortion) from chessboard photos, with OpenCV.

    roadpilot calibrate-camera photos/ --board 9x6 --out camera.json
    roadpilot calibrate-camera --live /dev/video0 --board 9x6 --out camera.json    (hold a board in front of it)

Print a chessboard, count its INNER corners (where four squares meet: a 10x7-square board has 9x6), photograph it
flat from 15 or more angles and distances with the camera as it will be used (same resolution, same focus), with the
board filling much of the picture and reaching its corners. Then pass the photos (files or folders) or the camera.

What happens, and what is printed:
  - every photo is read; one of a size that differs from the others' by a pixel or two (some cameras and tools add
    a row) is cropped to their size, one of another size is rejected (another camera or sensor mode);
  - the board is looked for (OpenCV's findChessboardCorners, then sub-pixel corners); a photo without the full grid
    (a board cut off by the frame edge, out of focus, too far) is rejected with that reason;
  - the camera is fitted (calibrateCamera: fx, fy, cx, cy, k1, k2, p1, p2, k3); a board whose corners do not fit the
    others' camera (reprojection RMS above max(REJECT_MIN_PX, REJECT_K x the median)) is rejected and the fit repeated;
  - boards found, used and rejected (each named, with the reason) and the RMS reprojection error are printed, and the
    camera file is written (common/transformations/camera_file.py); `roadpilot device --camera-params FILE` uses it.
It refuses (exit status 2, nothing written) when fewer than MIN_BOARDS boards remain or the fit is not a camera.
"""

import argparse
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from common.transformations.camera import CameraModel
from common.transformations.camera_file import CameraFileError, camera_from_dict, camera_to_dict, save_camera_file

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
SIZE_SLACK_PX = 2        # photos this much larger than the rest are the same camera with an extra row or column
MIN_BOARDS = 5           # fewer views cannot pin down fx, fy, cx, cy and five distortion terms
REJECT_MIN_PX = 1.0      # a board fitting worse than this and REJECT_K x the median is not the same camera/board
REJECT_K = 2.5
MAX_RMS_PX = 1.0         # a calibration worse than this on the boards it keeps is refused
LIVE_MOVE = 0.05         # live: a new view moves the board's corners by this share of the picture's width
SUBPIX = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 0.01)


class CalibrationError(Exception):
    """The photos cannot calibrate a camera: the message says why, in one line."""


@dataclass
class Board:
    name: str
    corners: np.ndarray          # (N, 1, 2) float32 pixels
    rms_px: float = float("nan")


@dataclass
class Result:
    camera: CameraModel
    rms_px: float
    used: list[Board]
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (photo, reason)
    found: int = 0
    seen: int = 0

    @property
    def how(self) -> str:
        return f"chessboard: {len(self.used)} of {self.seen} photos used"


def parse_board(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)[xX](\d+)", text.strip())
    if not m or not (2 <= int(m[1]) <= 50 and 2 <= int(m[2]) <= 50):
        raise argparse.ArgumentTypeError(f"--board wants the inner corners as COLSxROWS, e.g. 9x6, not {text!r}")
    return int(m[1]), int(m[2])


def natural_key(p: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def photo_paths(inputs: list[str]) -> list[Path]:
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += sorted((q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)
        elif p.exists():
            out.append(p)
        else:
            raise CalibrationError(f"{item}: no such file or folder")
    if not out:
        raise CalibrationError(f"no photos ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(inputs)}")
    return out


def find_board(gray: np.ndarray, inner: tuple[int, int]) -> np.ndarray | None:
    """The board's inner corners, sub-pixel, in OpenCV's order; None without the full grid."""
    flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
    ok, corners = cv2.findChessboardCorners(gray, inner, flags=flags)
    if not ok:
        return None
    return cv2.cornerSubPix(gray, corners, (11, 11), (-1, -1), SUBPIX).reshape(-1, 1, 2).astype(np.float32)


def common_size(sizes: list[tuple[int, int]]) -> tuple[int, int]:
    """The size most photos have (ties: the smaller, so every photo of the set can be cropped to it)."""
    counts: dict[tuple[int, int], int] = {}
    for s in sizes:
        counts[s] = counts.get(s, 0) + 1
    return min(counts, key=lambda s: (-counts[s], s))


def board_object_points(inner: tuple[int, int]) -> np.ndarray:
    obj = np.zeros((inner[0] * inner[1], 3), np.float32)
    obj[:, :2] = np.mgrid[0:inner[0], 0:inner[1]].T.reshape(-1, 2)
    return obj  # in squares: the focal length does not depend on the square's size


def fit(boards: list[Board], inner: tuple[int, int], size: tuple[int, int]) -> tuple[float, np.ndarray, np.ndarray]:
    """(rms, K, dist) over `boards`; each board's own rms is set."""
    obj = board_object_points(inner)
    rms, k, dist, rvecs, tvecs = cv2.calibrateCamera([obj] * len(boards), [b.corners for b in boards], size,
                                                     None, None)
    for b, r, t in zip(boards, rvecs, tvecs, strict=True):
        proj, _ = cv2.projectPoints(obj, r, t, k, dist)
        b.rms_px = float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - b.corners.reshape(-1, 2)) ** 2, axis=-1))))
    return float(rms), k, dist.ravel()


def calibrate(boards: list[Board], inner: tuple[int, int], size: tuple[int, int],
              rejected: list[tuple[str, str]] | None = None, seen: int = 0) -> Result:
    """Fits the camera, dropping the worst board while it does not fit the others' camera. CalibrationError when
    what is left cannot calibrate."""
    rejected = [] if rejected is None else rejected
    found = len(boards)
    boards = list(boards)
    while True:
        if len(boards) < MIN_BOARDS:
            raise CalibrationError(f"only {len(boards)} usable board{'s' * (len(boards) != 1)} of {seen or found} "
                                   f"photos; at least {MIN_BOARDS} are needed, from different angles and distances")
        rms, k, dist = fit(boards, inner, size)
        limit = max(REJECT_MIN_PX, REJECT_K * float(np.median([b.rms_px for b in boards])))
        worst = max(boards, key=lambda b: b.rms_px)
        if worst.rms_px <= limit:
            break
        boards.remove(worst)
        rejected.append((worst.name, f"corners do not fit the camera the other boards give "
                                     f"(reprojection {worst.rms_px:.2f} px, limit {limit:.2f} px)"))
    w, h = size
    try:
        cam = camera_from_dict(camera_to_dict(CameraModel(w, h, float(k[0, 0]), focal_y=float(k[1, 1]),
                                                          principal=(float(k[0, 2]), float(k[1, 2])),
                                                          dist=tuple(float(v) for v in dist))))
    except CameraFileError as e:
        raise CalibrationError(f"the fit is not a camera ({e}): photos from more angles and distances are needed") \
            from None
    if rms > MAX_RMS_PX:
        raise CalibrationError(f"reprojection error {rms:.2f} px on the boards kept (limit {MAX_RMS_PX} px): the board "
                               f"is not flat, the --board size is wrong, or the photos are blurred")
    return Result(cam, rms, boards, rejected, found, seen or found)


def from_photos(inputs: list[str], inner: tuple[int, int], log=print) -> Result:
    paths = photo_paths(inputs)
    images: list[tuple[str, np.ndarray]] = []
    rejected: list[tuple[str, str]] = []
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        if img is None:
            rejected.append((p.name, "not a picture OpenCV can read"))
        else:
            images.append((p.name, img))
    if not images:
        raise CalibrationError(f"none of the {len(paths)} files is a picture")
    w, h = common_size([(img.shape[1], img.shape[0]) for _, img in images])
    boards: list[Board] = []
    for name, img in images:
        ih, iw = img.shape
        if (iw, ih) != (w, h):
            if not (w <= iw <= w + SIZE_SLACK_PX and h <= ih <= h + SIZE_SLACK_PX):
                rejected.append((name, f"{iw}x{ih}, the others are {w}x{h}: another camera or sensor mode"))
                continue
            img = img[:h, :w]  # the extra row/column lies at the far edge: pixel coordinates stay the camera's
            log(f"  {name}: {iw}x{ih}, cropped to {w}x{h}")
        corners = find_board(img, inner)
        if corners is None:
            rejected.append((name, f"no full {inner[0]}x{inner[1]} grid of inner corners found (the board is cut off "
                                   f"by the frame edge, blurred, or too small)"))
            continue
        boards.append(Board(name, corners))
        log(f"  {name}: board found")
    return calibrate(boards, inner, (w, h), rejected, seen=len(paths))


def from_live(source: str, inner: tuple[int, int], frames: int, timeout_s: float, log=print) -> Result:
    """Boards from a webcam (or a video file): a frame is taken when the full board is in view and has moved since
    the last one taken, until `frames` views or `timeout_s` (then what was taken is used)."""
    cap = cv2.VideoCapture(int(source) if source.isdigit() else source)
    if not cap.isOpened():
        raise CalibrationError(f"cannot open camera or video {source}")
    boards: list[Board] = []
    size = None
    seen = 0
    last = None
    t_end = time.monotonic() + timeout_s
    try:
        while len(boards) < frames and time.monotonic() < t_end:
            ok, img = cap.read()
            if not ok:
                break  # a video at its end, or a camera gone
            seen += 1
            gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
            size = size or (gray.shape[1], gray.shape[0])
            corners = find_board(gray, inner)
            if corners is None:
                continue
            pts = corners.reshape(-1, 2)
            if last is not None and np.linalg.norm(pts - last, axis=1).mean() < LIVE_MOVE * size[0]:
                continue  # the same view again: move or turn the board
            last = pts
            boards.append(Board(f"frame {seen}", corners))
            log(f"  frame {seen}: board taken ({len(boards)}/{frames})")
    finally:
        cap.release()
    if size is None:
        raise CalibrationError(f"{source} delivered no picture")
    return calibrate(boards, inner, size, seen=seen)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="roadpilot calibrate-camera", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photos", nargs="*", help="chessboard photos, or folders of them")
    p.add_argument("--live", metavar="CAMERA", default=None,
                   help="take the boards from a webcam (/dev/video0, or its number) or a video file instead")
    p.add_argument("--board", type=parse_board, default=(9, 6), help="inner corners COLSxROWS (default 9x6)")
    p.add_argument("--out", required=True, metavar="FILE", help="the camera file to write (JSON)")
    p.add_argument("--frames", type=int, default=25, help="--live: views to take (default 25)")
    p.add_argument("--timeout", type=float, default=120.0, help="--live: seconds to wait for them (default 120)")
    a = p.parse_args(argv)
    if bool(a.photos) == bool(a.live):
        p.error("give either photos or --live CAMERA")
    if not (MIN_BOARDS <= a.frames <= 500) or not a.timeout > 0:
        p.error(f"--frames must be {MIN_BOARDS}..500 and --timeout positive")
    out = Path(a.out)
    if not out.parent.is_dir():
        p.error(f"--out: folder {out.parent} does not exist")
    print(f"calibrate-camera: looking for {a.board[0]}x{a.board[1]} inner corners", flush=True)
    try:
        res = (from_live(a.live, a.board, a.frames, a.timeout) if a.live else from_photos(a.photos, a.board))
    except CalibrationError as e:
        print(f"calibrate-camera: {e}", file=sys.stderr)
        return 2
    for name, why in res.rejected:
        print(f"  rejected {name}: {why}")
    print(f"boards: {res.seen} photos, {res.found} with the board found, {len(res.used)} used, "
          f"{len(res.rejected)} rejected")
    print(f"RMS reprojection error {res.rms_px:.3f} px (worst board {max(b.rms_px for b in res.used):.3f} px)")
    print(f"camera: {res.camera.describe()}")
    try:
        save_camera_file(out, res.camera, res.rms_px, res.how)
    except OSError as e:
        print(f"calibrate-camera: cannot write {out}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"wrote {out}: use it with `roadpilot device --camera-params {out}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
