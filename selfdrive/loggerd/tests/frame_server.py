"""A VisionIPC road-camera server for encoderd tests: `python -m selfdrive.loggerd.tests.frame_server W H`.

Serves frames 0, 1, 2... at 20 Hz until killed; frame k is `pattern(k)`, smooth enough to survive H.264 and
different enough from its neighbours that a decoded frame tells which id it was, with `timestamps(k)`.
Prints "serving" once the stream is up.
"""

import functools
import sys
import time

import numpy as np

from cereal.visionipc import VisionIpcServer, VisionStreamType

BITS = 12            # frame id bits drawn as big black/white blocks
SLOT_NS = 50_000_000


@functools.cache
def _ramps(width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:height, 0:width]
    cy, cx = np.mgrid[0:height // 2, 0:width // 2]
    return (x + y) // 4, 64 + (cx * 128) // (width // 2), cy * 128 // (height // 2)


def pattern(frame_id: int, width: int, height: int) -> np.ndarray:
    """NV12 frame: a diagonal luma ramp moving with the id, the id in 12 blocks, chroma ramps."""
    diag, u, v = _ramps(width, height)
    out = np.empty((height * 3 // 2, width), dtype=np.uint8)
    luma = out[:height]
    luma[:] = (diag + 6 * frame_id) % 200 + 28
    bw, bh = width // BITS, height // 4
    for b in range(BITS):
        luma[:bh, b * bw:(b + 1) * bw] = 235 if frame_id >> b & 1 else 16
    uv = out[height:].reshape(height // 2, width // 2, 2)
    uv[..., 0] = u
    uv[..., 1] = 64 + (v + 3 * frame_id) % 128
    return out


def timestamps(frame_id: int) -> tuple[int, int]:
    return 1_000_000_000 + frame_id * SLOT_NS, 1_000_000_000 + frame_id * SLOT_NS + 20_000_000


def main() -> None:
    width, height = int(sys.argv[1]), int(sys.argv[2])
    srv = VisionIpcServer(VisionStreamType.ROAD, width, height)
    print("serving", flush=True)
    start, k = time.monotonic(), 0
    while True:
        frame = pattern(k, width, height)
        time.sleep(max(0.0, start + k * 0.05 - time.monotonic()))
        srv.send(frame, k, *timestamps(k))
        k += 1


if __name__ == "__main__":
    main()
