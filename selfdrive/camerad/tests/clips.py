"""Small synthetic videos for the camerad tests: frame i is one flat grey level, so a decoded picture says
which source frame it was (H.264 keeps a flat picture within a grey level or two)."""

from fractions import Fraction

import av
import numpy as np

STEP = 20


def level(i: int) -> int:
    return 10 + STEP * i


def write_clip(path: str, frames: int, fps: int, width: int = 64, height: int = 48) -> str:
    with av.open(path, "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.codec_context.time_base = Fraction(1, fps)
        s.options = {"preset": "ultrafast", "crf": "10"}
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(np.full((height, width, 3), level(i), np.uint8), format="bgr24")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


def which_frame(bgr: np.ndarray) -> int:
    """The source frame index a (converted or not) picture of write_clip shows."""
    return round((float(bgr.mean()) - 10) / STEP)
