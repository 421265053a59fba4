#!/usr/bin/env python3
"""modeld's work per frame: the warp into the model frame and the driving model in onnxruntime, p50/p99.

The frames are real: the Udacity dash-cam clip (../shared/data/udacity-dashcam/solidWhiteRight.mp4, 960x540)
fitted to the 1164x874 road camera and converted to NV12 exactly as camerad serves it; without that clip the
simulator's renderer draws the frames instead (and the output says so). Each frame goes through modeld's own
code: FrameWarper.push (the remap maps for a non-zero calibration, cached as in modeld) and ModelRunner.run
with modeld's thread setting. Reading the frame from VisionIPC is not counted (it is a view into shared
memory). Frames come at the camera's 20 Hz, as in modeld (caches and thread pools go cold between frames as
they do live; --hz 0 runs back to back). Wall time is what the 20 Hz loop feels; CPU time (this process, all
threads: onnxruntime's pool and OpenCV's) is printed beside it because on a shared machine the wall time also
counts other processes' turns. The last line is the process's CPU over the whole run per frame, the time
between frames included: a thread pool that busy-waits between runs shows up there.

Design budget: modeld p99 <= 25 ms per frame on 2 CPU cores (20 Hz leaves 50 ms).
"""

import argparse
import os
import time

import cv2
import numpy as np

from common.transformations.camera import CameraModel
from selfdrive.camerad.nv12 import to_nv12
from selfdrive.modeld.modeld import THREADS, FrameWarper
from selfdrive.modeld.runner import DEFAULT_MODEL, ModelRunner
from tools.sim.lib.renderer import lane_centre_frames

BUDGET_MS = 25.0
W, H = CameraModel.width, CameraModel.height  # the default road camera's frames
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UDACITY = os.path.normpath(os.path.join(REPO, "..", "shared", "data", "udacity-dashcam", "solidWhiteRight.mp4"))
CALIB = (0.0, np.radians(1.5), np.radians(-2.0))   # a mounted camera's calibration: a real (non-identity) warp


def video_frames(path: str, limit: int) -> list[np.ndarray]:
    import av
    out = []
    with av.open(path) as c:
        for f in c.decode(video=0):
            out.append(to_nv12(f.to_ndarray(format="bgr24"), W, H))
            if len(out) >= limit:
                break
    return out


def bench(runner: ModelRunner, frames: list[np.ndarray], n: int, warmup: int,
          hz: float) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], float]:
    """ms per frame of each stage, {'warp' | 'model' | 'total': (wall array, cpu array)}, and the process's CPU
    ms per frame over the measured run (between frames included)."""
    warper = FrameWarper()
    warper.set_calibration(CALIB)
    t: dict[str, tuple[list, list]] = {k: ([], []) for k in ("warp", "model", "total")}
    next_t, cpu_run = time.monotonic(), 0.0
    for i in range(warmup + n):
        if hz > 0:
            next_t += 1.0 / hz
            time.sleep(max(0.0, next_t - time.monotonic()))
        if i == warmup:
            cpu_run = time.process_time()
        y = frames[i % len(frames)][:H]
        w0, c0 = time.perf_counter(), time.process_time()
        pair = warper.push(y)
        w1, c1 = time.perf_counter(), time.process_time()
        runner.run(pair)
        w2, c2 = time.perf_counter(), time.process_time()
        if i >= warmup:
            for k, (a, b, ca, cb) in (("warp", (w0, w1, c0, c1)), ("model", (w1, w2, c1, c2)),
                                      ("total", (w0, w2, c0, c2))):
                t[k][0].append(b - a)
                t[k][1].append(cb - ca)
    cpu_run = (time.process_time() - cpu_run) / n * 1e3
    return {k: (np.array(w) * 1e3, np.array(c) * 1e3) for k, (w, c) in t.items()}, cpu_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=400, help="measured frames (the clip's 221 cycle)")
    ap.add_argument("--hz", type=float, default=20.0, help="frame rate; 0: back to back")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--threads", type=int, default=THREADS, help=f"onnxruntime threads (modeld's: {THREADS})")
    ap.add_argument("--video", default=UDACITY)
    args = ap.parse_args()

    if os.path.isfile(args.video):
        frames = video_frames(args.video, 1000)
        source = f"{os.path.basename(args.video)} ({len(frames)} real frames, fitted to {W}x{H} NV12 as camerad does)"
    else:
        frames = lane_centre_frames(100)
        source = f"SIMULATOR frames ({len(frames)}, highway): the dash-cam clip is missing at {args.video}"
    runner = ModelRunner(args.model, args.threads)
    print(f"modeld per frame: warp {W}x{H} -> model frame + {os.path.relpath(args.model)} "
          f"({os.path.getsize(args.model) / 1e3:.0f} kB), onnxruntime threads {args.threads}, "
          f"cv2 threads {cv2.getNumThreads()}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    rate = f"at {args.hz:g} Hz" if args.hz > 0 else "back to back"
    print(f"frames: {source}; {args.frames} measured {rate} after {args.warmup} warm-up")
    res, cpu_run = bench(runner, frames, args.frames, args.warmup, args.hz)
    p = lambda a, q: float(np.percentile(a, q))  # noqa: E731
    print(f"  {'stage':<10} {'wall p50':>9} {'wall p99':>9} {'wall max':>9} {'cpu p50':>8} {'cpu p99':>8}   (ms)")
    for k, label in (("warp", "warp"), ("model", "inference"), ("total", "total")):
        wall, cpu = res[k]
        print(f"  {label:<10} {p(wall, 50):9.2f} {p(wall, 99):9.2f} {wall.max():9.2f} {p(cpu, 50):8.2f} "
              f"{p(cpu, 99):8.2f}")
    print(f"  process CPU per frame over the run (between frames included): {cpu_run:.2f} ms")
    worst = p(res["total"][0], 99)
    verdict = "within" if worst <= BUDGET_MS else "OUTSIDE"
    print(f"total wall p99 {worst:.2f} ms = {worst / BUDGET_MS:.2f}x the {BUDGET_MS:.0f} ms budget -> {verdict}")


if __name__ == "__main__":
    main()
