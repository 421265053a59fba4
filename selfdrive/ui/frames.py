"""Road camera frames for the page: NV12 from VisionIPC -> a JPEG sized for the link, encoded once per frame."""

import cv2
import numpy as np


def jpeg_size(cam_width: int, cam_height: int, out_width: int) -> tuple[int, int]:
    """The JPEG's (width, height): `out_width` wide (never wider than the camera), the camera's aspect ratio."""
    w = max(1, min(out_width, cam_width))
    return w, max(1, round(cam_height * w / cam_width))


def encode_nv12(nv12: np.ndarray, out_width: int, quality: int) -> bytes:
    """One NV12 frame (height*3/2, width) -> JPEG bytes, scaled to `out_width`."""
    bgr = cv2.cvtColor(nv12, cv2.COLOR_YUV2BGR_NV12)
    h, w = bgr.shape[:2]
    size = jpeg_size(w, h, out_width)
    if size != (w, h):
        # area averaging (no aliasing) has a fast path only for whole-number factors (1164x874 -> 582x437: ~2 ms);
        # other factors take ~15x longer here, so they get bilinear
        whole = w % size[0] == 0 and h % size[1] == 0 and w // size[0] == h // size[1]
        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA if whole else cv2.INTER_LINEAR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding failed for a {w}x{h} frame")
    return buf.tobytes()
