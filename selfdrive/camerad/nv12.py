"""Image helpers for the camera sources: fit a picture to the served size (and say what camera that makes), convert
BGR/I420 to NV12.

NV12 is what VisionIPC carries: `height` rows of Y, then `height / 2` rows of interleaved U, V
(`width` bytes each). OpenCV has no BGR->NV12 conversion, but it has BGR->I420 (planar Y, U, V); NV12 is
the same samples with U and V interleaved, which NumPy does with two strided copies. The I420 chroma
planes are not whole rows when `height / 2` is odd (874 / 2 = 437), so they are sliced from the flat
buffer, never by rows.
"""

import dataclasses

import cv2
import numpy as np

from common.transformations.camera import CameraModel


def nv12_shape(width: int, height: int) -> tuple[int, int]:
    return height * 3 // 2, width


def check_size(width: int, height: int) -> None:
    if width < 2 or height < 2 or width % 2 or height % 2:
        raise ValueError(f"NV12 needs an even width and height of at least 2, got {width}x{height}")


def cover_window(w: int, h: int, width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, cw, ch): the largest centred window of a w x h picture with width x height's aspect ratio."""
    if w * height > h * width:        # source wider than the target: crop the sides
        cw, ch = max(1, round(h * width / height)), h
    else:                             # source taller (or same aspect): crop top and bottom
        cw, ch = w, max(1, round(w * height / width))
    return (w - cw) // 2, (h - ch) // 2, cw, ch


def cover_crop(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """`img` scaled to cover width x height (aspect ratio kept), centre-cropped to exactly that size.

    Crops in source pixels first and resizes once, so the resize never computes pixels that are thrown away.
    """
    h, w = img.shape[:2]
    if (w, h) == (width, height):
        return img
    x0, y0, cw, ch = cover_window(w, h, width, height)
    window = img[y0:y0 + ch, x0:x0 + cw]
    shrinking = cw > width
    return cv2.resize(window, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def cover_crop_camera(cam: CameraModel, width: int, height: int) -> CameraModel:
    """The camera that sees what `cover_crop` makes of its pictures: the window's offset moves the principal point,
    the resize scales the focal lengths (distortion, in normalised coordinates, stays). Pixel centres map as
    cv2.resize maps them."""
    if (cam.width, cam.height) == (width, height):
        return cam
    x0, y0, cw, ch = cover_window(cam.width, cam.height, width, height)
    sx, sy = width / cw, height / ch
    return dataclasses.replace(cam, width=width, height=height, focal=cam.fx * sx, focal_y=cam.fy * sy,
                               principal=((cam.cx - x0 + 0.5) * sx - 0.5, (cam.cy - y0 + 0.5) * sy - 0.5))


def i420_to_nv12(i420: np.ndarray, width: int, height: int, out: np.ndarray | None = None) -> np.ndarray:
    """Planar I420 (Y, then U, then V; any shape holding width*height*3/2 bytes) to NV12 (height*3/2, width)."""
    check_size(width, height)
    flat = i420.reshape(-1)
    ysz, csz = width * height, (width // 2) * (height // 2)
    if flat.size != ysz + 2 * csz:
        raise ValueError(f"I420 {width}x{height} is {ysz + 2 * csz} bytes, got {flat.size}")
    if out is None:
        out = np.empty(nv12_shape(width, height), dtype=np.uint8)
    out[:height] = flat[:ysz].reshape(height, width)
    uv = out[height:].reshape(height // 2, width // 2, 2)
    uv[..., 0] = flat[ysz:ysz + csz].reshape(height // 2, width // 2)
    uv[..., 1] = flat[ysz + csz:].reshape(height // 2, width // 2)
    return out


def bgr_to_nv12(bgr: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """BGR (height, width, 3) uint8 to NV12 (height*3/2, width), BT.601 limited range as OpenCV converts it."""
    if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
        raise ValueError(f"expected a BGR uint8 image (h, w, 3), got {bgr.dtype} {bgr.shape}")
    height, width = bgr.shape[:2]
    check_size(width, height)
    return i420_to_nv12(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420), width, height, out)


def nv12_to_bgr(nv12: np.ndarray) -> np.ndarray:
    """NV12 (height*3/2, width) to BGR, for viewers and tests."""
    return cv2.cvtColor(np.ascontiguousarray(nv12), cv2.COLOR_YUV2BGR_NV12)


def to_nv12(img: np.ndarray, width: int, height: int, out: np.ndarray | None = None) -> np.ndarray:
    """A source's picture as a width x height NV12 frame: BGR of any size is fitted (cover + centre crop)
    and converted; NV12 must already have the size (a sim frame of another size is the sender's error)."""
    if img.ndim == 3:
        return bgr_to_nv12(np.ascontiguousarray(cover_crop(img, width, height)), out)
    if img.ndim == 2 and img.shape == nv12_shape(width, height) and img.dtype == np.uint8:
        if out is None:
            return img
        out[...] = img
        return out
    raise ValueError(f"frame {img.dtype} {img.shape} is neither BGR (h, w, 3) nor NV12 {nv12_shape(width, height)}")
