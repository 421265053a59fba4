#!/usr/bin/env python3
"""uid's CPU per frame with one page open against three, measured in one run, as a ratio.

A VisionIPC server in a helper process serves dashcam frames (the udacity clip from the shared test data, decoded
and fitted to 1164x874 NV12; a synthetic picture when it is absent) at 20 Hz, a publisher thread sends the
services a page shows (modelV2 with path, lanes, edges and a lead, selfdriveState, ...), and uid runs as its own
process. Pages are WebSocket clients in the bench's own process that read everything, as fast as it comes. For each page
count, after a warm-up, uid's CPU time (user + system, all threads: psutil) over the window is divided by the
frames it sent (distinct frame ids the first page received: each is encoded once). Page counts alternate over
several rounds and the median per count is reported, so load from other work on the machine hits both alike.

Design budget (issue 9): with three pages open, uid's CPU per frame stays within 1.2x of one page.
"""

import argparse
import multiprocessing as mp
import os
import statistics
import tempfile
import time

import numpy as np
import psutil


def dashcam_frames(n: int) -> tuple[list[np.ndarray], str]:
    from selfdrive.camerad.nv12 import to_nv12
    from selfdrive.ui.tests.stack import UDACITY, H, W
    if os.path.isfile(UDACITY):
        import av
        frames = []
        with av.open(UDACITY) as c:
            for f in c.decode(video=0):
                frames.append(to_nv12(f.to_ndarray(format="bgr24"), W, H))
                if len(frames) == n:
                    break
        return frames, "udacity dashcam clip"
    from selfdrive.ui.tests.stack import gradient_frame
    return [gradient_frame()], "synthetic gradient (dashcam clip not found)"


def serve_inputs(ready, stop, name) -> None:
    """Camera frames and services, from their own process: the pages' reader threads must not delay them."""
    from selfdrive.ui.tests import stack
    frames, what = dashcam_frames(40)
    server, services = stack.FrameServer(frames), stack.SynthServices()
    name.put(what)
    ready.set()
    stop.wait()
    services.close()
    server.close()


def measure(uid_pid: int, port: int, pages: int, warmup_s: float, window_s: float) -> dict:
    from selfdrive.ui.tests.stack import Reader
    readers = [Reader(port) for _ in range(pages)]
    try:
        time.sleep(warmup_s)
        proc = psutil.Process(uid_pid)
        c0, ids0, b0 = proc.cpu_times(), set(readers[0].frame_ids), [r.frame_bytes for r in readers]
        t0 = time.monotonic()
        time.sleep(window_s)
        c1, ids1, b1 = proc.cpu_times(), set(readers[0].frame_ids), [r.frame_bytes for r in readers]
        dt = time.monotonic() - t0
    finally:
        for r in readers:
            r.close()
    frames = len(ids1 - ids0)
    cpu = (c1.user + c1.system) - (c0.user + c0.system)
    return {"pages": pages, "frames": frames, "fps": frames / dt, "cpu_ms_per_frame": 1e3 * cpu / max(frames, 1),
            "cpu_pct": 100 * cpu / dt, "kB_per_frame": (b1[0] - b0[0]) / max(frames, 1) / 1e3,
            "MBps_per_page": statistics.mean(b - a for a, b in zip(b0, b1, strict=True)) / dt / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="alternating 1-page / 3-page rounds (default: 3)")
    ap.add_argument("--window", type=float, default=5.0, help="seconds measured per round and page count")
    ap.add_argument("--warmup", type=float, default=1.5, help="seconds after the pages connect, not measured")
    ap.add_argument("--pages", default="1,3", help="page counts to compare, the first is the reference (default: 1,3)")
    args = ap.parse_args()
    os.environ.setdefault("ROADPILOT_PREFIX", f"bench{os.getpid()}")
    os.environ.setdefault("ROADPILOT_LOGLEVEL", "ERROR")

    from selfdrive.ui.tests import stack
    ctx = mp.get_context("fork")
    ready, stop, name = ctx.Event(), ctx.Event(), ctx.Queue()
    source = ctx.Process(target=serve_inputs, args=(ready, stop, name), daemon=True)
    source.start()
    assert ready.wait(60), "the frame source did not start"
    port = stack.free_port()
    with tempfile.TemporaryDirectory() as logs:
        uid = stack.start_uid(logs, port)
        try:
            counts = [int(n) for n in args.pages.split(",")]
            runs: dict[int, list[dict]] = {n: [] for n in counts}
            for _ in range(args.rounds):
                for pages in counts:
                    runs[pages].append(measure(uid.pid, port, pages, args.warmup, args.window))
        finally:
            stack.stop(uid)
            stop.set()
            source.join(10)

    source = name.get()

    print(f"uid, 20 Hz camera ({source}), default settings (582 px JPEG, quality 70); "
          f"{args.rounds} rounds x {args.window:g} s per page count; {os.cpu_count()} CPUs, shared")
    med = {}
    for pages, rs in runs.items():
        med[pages] = statistics.median(r["cpu_ms_per_frame"] for r in rs)
        m = {k: statistics.median(r[k] for r in rs) for k in ("fps", "cpu_pct", "kB_per_frame", "MBps_per_page")}
        each = ", ".join(f"{r['cpu_ms_per_frame']:.2f}" for r in rs)
        print(f"  {pages} page{'s' if pages > 1 else ' '}: CPU per frame median {med[pages]:6.2f} ms (rounds: {each}); "
              f"{m['fps']:4.1f} fps, uid {m['cpu_pct']:4.1f}% of a core, {m['kB_per_frame']:5.1f} kB/frame, "
              f"{m['MBps_per_page']:4.2f} MB/s per page")
    ref = counts[0]
    for n in counts[1:]:
        ratio = med[n] / med[ref]
        verdict = f" (budget <= 1.2x): {'within' if ratio <= 1.2 else 'OUTSIDE'} budget" if (ref, n) == (1, 3) else ""
        print(f"ratio {n} pages / {ref} page{'s' if ref > 1 else ''}: {ratio:.2f}x{verdict}")

if __name__ == "__main__":
    main()
