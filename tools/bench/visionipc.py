#!/usr/bin/env python3
"""VisionIPC against plain ZMQ for camera frames, measured in one run, as ratios.

A 1164x874 NV12 frame (1.53 MB) at 20 Hz goes from a sender process to a receiver process, once
through VisionIPC (copy into shared memory + a 52-byte notification; the receiver gets a NumPy view)
and once through plain ZMQ (the whole frame as one PUB/SUB message over ipc://, received into a
NumPy array without a further copy). Latency runs from the start of the send call to the moment the
receiver holds a usable array; both ends read CLOCK_MONOTONIC (time.monotonic_ns), shared by all
processes. The send time is stamped into the frame's first pixels. CPU time per frame is user+system
time (all threads, ZMQ's I/O threads included) of sender plus receiver over the measured frames.

Two VisionIPC paths: send() copies a frame that already exists into shared memory (latency includes
the copy); acquire()/publish() lets the producer write its frame straight into the buffer (latency
from publish(), the producer's fill counted in its CPU but not in latency, just as ZMQ's frame is
produced before its send). A 52-byte ZMQ message shows the floor: VisionIPC's notification alone.

Design budget: VisionIPC latency <= 0.5x ZMQ's.
"""

import argparse
import multiprocessing as mp
import os
import resource
import time

import numpy as np

from common.transformations.camera import CameraModel

W, H = CameraModel.width, CameraModel.height  # the default road camera's frames
FRAME_BYTES = W * H * 3 // 2


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _frames() -> list[np.ndarray]:
    # A few distinct frames with camera-like entropy; the sender cycles through them.
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, FRAME_BYTES, dtype=np.uint8) for _ in range(4)]


def _stamp(arr: np.ndarray, fid: int) -> int:
    """Writes the send-call start time and frame id into the first 16 pixels; returns that time."""
    t0 = time.monotonic_ns()
    arr[:16] = np.frombuffer(t0.to_bytes(8, "little") + fid.to_bytes(8, "little"), dtype=np.uint8)
    return t0


def _send_loop(send, n: int, warmup: int, hz: float, out) -> None:
    """Calls send(frame, frame_id) at `hz`; `send` stamps the frame (see _stamp) right before sending it."""
    frames, next_t, cpu0 = _frames(), time.monotonic(), 0.0
    for fid in range(warmup + n):
        if fid == warmup:
            cpu0 = _cpu_s()
        send(frames[fid % len(frames)], fid)
        next_t += 1.0 / hz
        time.sleep(max(0.0, next_t - time.monotonic()))
    out.put(("sender", _cpu_s() - cpu0))
    time.sleep(0.5)  # keep the segment/socket up until the receiver is surely done with the last frame


def _receive_loop(recv, n: int, warmup: int, out) -> None:
    lat, cpu0, got, last = [], None, 0, warmup + n - 1
    while (r := recv()) is not None:
        arr, t1 = r
        t0, fid = int.from_bytes(arr[:8].tobytes(), "little"), int.from_bytes(arr[8:16].tobytes(), "little")
        if fid < warmup:
            continue
        if cpu0 is None:
            cpu0 = _cpu_s()  # from the first measured frame on: n-1 frames' worth of work
        lat.append(t1 - t0)
        got += 1
        if fid == last:
            break
    out.put(("receiver", lat, got, (_cpu_s() - cpu0) / max(got - 1, 1) if cpu0 is not None else float("nan")))


def vipc_sender(n: int, warmup: int, hz: float, bound, ready, out) -> None:
    from cereal.visionipc import VisionIpcServer, VisionStreamType
    srv = VisionIpcServer(VisionStreamType.ROAD, W, H, num_buffers=4)
    bound.set()
    ready.wait(30)

    def send(f: np.ndarray, fid: int) -> None:
        t0 = _stamp(f, fid)
        srv.send(f, fid, t0, t0)
    _send_loop(send, n, warmup, hz, out)
    srv.close()


def vipc_inplace_sender(n: int, warmup: int, hz: float, bound, ready, out) -> None:
    from cereal.visionipc import VisionIpcServer, VisionStreamType
    srv = VisionIpcServer(VisionStreamType.ROAD, W, H, num_buffers=4)
    bound.set()
    ready.wait(30)

    def send(f: np.ndarray, fid: int) -> None:
        buf = srv.acquire()
        np.copyto(buf.nv12, f.reshape(H * 3 // 2, W))  # the producer writes its frame straight into the buffer
        t0 = _stamp(buf.y.reshape(-1), fid)
        srv.publish(buf, fid, t0, t0)
    _send_loop(send, n, warmup, hz, out)
    srv.close()


def vipc_receiver(n: int, warmup: int, bound, ready, out) -> None:
    from cereal.visionipc import VisionIpcClient, VisionStreamType
    bound.wait(30)
    c = VisionIpcClient(VisionStreamType.ROAD)
    assert c.connect(10.0), "no VisionIPC server"
    ready.set()

    def recv():
        frame = c.recv(3000)
        if frame is None:
            return None
        t1 = time.monotonic_ns()
        return frame.y.reshape(-1), t1  # the stamp lives in the first Y row
    _receive_loop(recv, n, warmup, out)


def zmq_sender(n: int, warmup: int, hz: float, bound, ready, out, nbytes: int = FRAME_BYTES) -> None:
    import zmq

    from cereal.messaging.endpoints import ipc_endpoint
    sock = zmq.Context.instance().socket(zmq.PUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(ipc_endpoint("bench_frames", create=True))
    bound.set()
    ready.wait(30)
    def send(f: np.ndarray, fid: int) -> None:
        _stamp(f, fid)
        # copy=False for a large message, as cereal.messaging does: zmq sends from our buffer without copying it.
        sock.send(f[:nbytes], zmq.NOBLOCK, copy=nbytes < 65536)
    _send_loop(send, n, warmup, hz, out)
    sock.close(0)


def zmq_receiver(n: int, warmup: int, bound, ready, out) -> None:
    import zmq

    from cereal.messaging.endpoints import ipc_endpoint
    bound.wait(30)
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(ipc_endpoint("bench_frames"))
    ready.set()

    def recv():
        if not sock.poll(3000):
            return None
        msg = sock.recv(copy=False)
        arr = np.frombuffer(msg.buffer, dtype=np.uint8)
        t1 = time.monotonic_ns()
        return arr, t1
    _receive_loop(recv, n, warmup, out)


def zmq_small_sender(n: int, warmup: int, hz: float, bound, ready, out) -> None:
    zmq_sender(n, warmup, hz, bound, ready, out, nbytes=52)  # as big as a VisionIPC notification


def run_pair(sender, receiver, n: int, warmup: int, hz: float) -> tuple[np.ndarray, int, float]:
    """Returns (latencies ms, frames received, CPU ms per frame of sender + receiver)."""
    ctx = mp.get_context("spawn")
    out, bound, ready = ctx.Queue(), ctx.Event(), ctx.Event()
    s = ctx.Process(target=sender, args=(n, warmup, hz, bound, ready, out))
    r = ctx.Process(target=receiver, args=(n, warmup, bound, ready, out))
    s.start()
    r.start()
    res = dict((m[0], m[1:]) for m in (out.get(timeout=60 + 2 * n / hz) for _ in range(2)))
    s.join(30)
    r.join(30)
    lat, got, recv_cpu = res["receiver"]
    send_cpu = res["sender"][0] / n
    return np.array(lat, dtype=np.float64) / 1e6, got, (send_cpu + recv_cpu) * 1e3


PATHS = {  # name: (sender, receiver)
    "VisionIPC send() (copy)": (vipc_sender, vipc_receiver),
    "VisionIPC acquire/publish": (vipc_inplace_sender, vipc_receiver),
    "plain ZMQ, whole frame": (zmq_sender, zmq_receiver),
    "ZMQ 52 B (notify floor)": (zmq_small_sender, zmq_receiver),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=200, help="measured frames per path (200 at 20 Hz = 10 s)")
    ap.add_argument("--rounds", type=int, default=2, help="paths take turns this many times, so drifting load "
                                                            "on a shared machine hits all of them alike")
    ap.add_argument("--warmup", type=int, default=20, help="frames sent before measuring (ZMQ slow joiner)")
    ap.add_argument("--hz", type=float, default=20.0)
    args = ap.parse_args()
    os.environ.setdefault("ROADPILOT_PREFIX", f"bench{os.getpid()}")
    os.environ.setdefault("ROADPILOT_LOGLEVEL", "ERROR")

    per_round = max(1, args.frames // args.rounds)
    print(f"{W}x{H} NV12 frame ({FRAME_BYTES / 1e6:.2f} MB) at {args.hz:g} Hz, {per_round * args.rounds} measured "
          f"frames per path in {args.rounds} rounds, sender and receiver in separate processes "
          f"({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f})", flush=True)
    lat = {name: [] for name in PATHS}
    cpu = {name: 0.0 for name in PATHS}
    got = {name: 0 for name in PATHS}
    for _ in range(args.rounds):
        for name, (sender, receiver) in PATHS.items():
            ms, g, c = run_pair(sender, receiver, per_round, args.warmup, args.hz)
            lat[name].append(ms)
            cpu[name] += c / args.rounds
            got[name] += g
    stats = {}
    print(f"  {'path':27s} {'p50 ms':>7s} {'p99 ms':>7s} {'max ms':>7s}  {'CPU ms/frame (send+recv)':>24s}  received")
    for name in PATHS:
        a = np.concatenate(lat[name])
        stats[name] = (np.percentile(a, 50), np.percentile(a, 99))
        print(f"  {name:27s} {stats[name][0]:7.3f} {stats[name][1]:7.3f} {a.max():7.3f}  {cpu[name]:24.3f}  "
              f"{got[name]}/{per_round * args.rounds}")
    z50, z99 = stats["plain ZMQ, whole frame"]
    zcpu = cpu["plain ZMQ, whole frame"]
    for name in ("VisionIPC send() (copy)", "VisionIPC acquire/publish"):
        r50, r99 = stats[name][0] / z50, stats[name][1] / z99
        verdict = "within" if max(r50, r99) <= 0.5 else "OUTSIDE"
        print(f"  ratio {name} / plain ZMQ: latency p50 {r50:.2f}x  p99 {r99:.2f}x  CPU {cpu[name] / zcpu:.2f}x"
              f"   -> {verdict} the 0.5x budget")


if __name__ == "__main__":
    main()
