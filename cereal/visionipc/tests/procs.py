"""Real processes the VisionIPC tests drive (`python -m cereal.visionipc.tests.procs server|client ...`).

Frames carry their own checksum: bytes 0-7 are the frame id, 8-11 the CRC32 of everything after
byte 12 (Y and UV), the rest is pseudo-random per frame id. Both print one JSON object per line.
"""

import argparse
import json
import sys
import time
import zlib

import numpy as np

from cereal.visionipc import VisionIpcClient, VisionIpcServer, VisionStreamType, nv12_size


def make_frame(frame_id: int, width: int, height: int) -> np.ndarray:
    f = np.random.default_rng(frame_id).integers(0, 256, nv12_size(width, height), dtype=np.uint8)
    f[:8] = np.frombuffer(frame_id.to_bytes(8, "little"), dtype=np.uint8)
    f[8:12] = np.frombuffer(zlib.crc32(f[12:]).to_bytes(4, "little"), dtype=np.uint8)
    return f


def frame_ok(nv12: np.ndarray, frame_id: int) -> bool:
    """True if the pixels are exactly frame `frame_id` as make_frame built it (its id and CRC match)."""
    b = np.ascontiguousarray(nv12).tobytes()
    return int.from_bytes(b[:8], "little") == frame_id and int.from_bytes(b[8:12], "little") == zlib.crc32(b[12:])


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def server(a: argparse.Namespace) -> None:
    srv = VisionIpcServer(VisionStreamType.ROAD, a.width, a.height, num_buffers=a.buffers, stride=a.stride)
    emit(event="serving", generation=srv.generation)
    frames = [make_frame(i, a.width, a.height) for i in range(64)]  # precomputed: the loop keeps its rate
    fid, next_t = a.first_id, time.monotonic()
    while a.frames == 0 or fid < a.first_id + a.frames:
        t = time.monotonic_ns()
        f = frames[fid % 64].copy()
        f[:8] = np.frombuffer(fid.to_bytes(8, "little"), dtype=np.uint8)
        f[8:12] = np.frombuffer(zlib.crc32(f[12:]).to_bytes(4, "little"), dtype=np.uint8)
        srv.send(f, fid, t, t)
        fid += 1
        next_t += 1.0 / a.hz
        time.sleep(max(0.0, next_t - time.monotonic()))
    srv.close()
    emit(event="done")


def client(a: argparse.Namespace) -> None:
    c = VisionIpcClient(VisionStreamType.ROAD)
    emit(event="started")
    if not c.connect(a.timeout):
        emit(event="timeout")
        sys.exit(2)
    emit(event="connected", generation=c.generation)
    deadline, received = time.monotonic() + a.timeout, 0
    while received < a.count and time.monotonic() < deadline:
        frame = c.recv(100)
        if frame is None:
            continue
        ok_now = frame_ok(frame.nv12, frame.frame_id)   # read right after recv()
        intact_now = frame.valid_after_read()
        if a.hold_ms:
            time.sleep(a.hold_ms / 1000)                  # a slow consumer still holding the view
        ok_late = frame_ok(frame.nv12, frame.frame_id)
        intact_late = frame.valid_after_read()
        emit(event="frame", frame_id=frame.frame_id, generation=frame.generation, dropped=frame.dropped_before,
             ok_now=ok_now, intact_now=intact_now, ok_late=ok_late, intact_late=intact_late)
        received += 1
    emit(event="summary", received=received, dropped=c.dropped_frames, malformed=c.malformed)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=["server", "client"])
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--stride", type=int, default=None)
    p.add_argument("--buffers", type=int, default=4)
    p.add_argument("--hz", type=float, default=100.0)
    p.add_argument("--frames", type=int, default=0, help="0: until SIGTERM")
    p.add_argument("--first-id", type=int, default=0)
    p.add_argument("--count", type=int, default=30)
    p.add_argument("--hold-ms", type=float, default=0.0)
    p.add_argument("--timeout", type=float, default=15.0)
    args = p.parse_args()
    server(args) if args.role == "server" else client(args)
