#!/usr/bin/env python3
"""PubMaster→SubMaster against raw pyzmq+pycapnp, measured in one run, as ratios.

Latency: a small carState message at 100 Hz from one process to another; time from building the
message to having it parsed on the other side (both clocks are CLOCK_MONOTONIC, shared by processes).
Throughput: the sender sends one prebuilt message as fast as it can (building is the producer's cost,
not the transport's); the reader counts what it parsed per second.
Design budget: latency ≤ 1.5× raw, throughput ≥ 100k msg/s.
"""

import argparse
import multiprocessing as mp
import os
import time

import numpy as np


def _raw_sender(n: int, hz: float, ready, go) -> None:
    import zmq

    from cereal import log
    from cereal.messaging.endpoints import ipc_endpoint
    sock = zmq.Context.instance().socket(zmq.PUB)
    sock.setsockopt(zmq.SNDHWM, 2000)
    sock.bind(ipc_endpoint("carState", create=True))
    ready.wait()
    go.set()
    if hz > 0:
        _send_loop(n, hz, lambda: _raw_send(sock, log))
    else:
        dat = _small_message(log)
        _send_loop(n, hz, lambda: sock.send(dat))


def _small_message(log) -> bytes:
    e = log.Event.new_message(logMonoTime=time.monotonic_ns())
    cs = e.init("carState")
    cs.vEgo = 20.0
    cs.steeringAngleDeg = 1.5
    return e.to_bytes()


def _raw_send(sock, log) -> None:
    sock.send(_small_message(log))


def _rp_sender(n: int, hz: float, ready, go) -> None:
    from cereal import messaging
    pm = messaging.PubMaster(["carState"])
    ready.wait()
    go.set()

    def send():
        m = messaging.new_message("carState")
        m.carState.vEgo = 20.0
        m.carState.steeringAngleDeg = 1.5
        pm.send("carState", m)

    if hz > 0:
        _send_loop(n, hz, send)
    else:
        from cereal import log
        dat = _small_message(log)
        _send_loop(n, hz, lambda: pm.send("carState", dat))


def _send_loop(n: int, hz: float, send) -> None:
    time.sleep(0.5)  # let the subscriber's connection come up (ZMQ slow joiner)
    next_t = time.monotonic()
    for _ in range(n):
        send()
        if hz > 0:
            next_t += 1.0 / hz
            time.sleep(max(0.0, next_t - time.monotonic()))
    time.sleep(0.2)
    send()  # not counted: tells a blocking reader we are done even if messages were dropped


def _raw_reader(n: int, out, ready, go) -> None:
    import zmq

    from cereal import log
    from cereal.messaging.endpoints import ipc_endpoint
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.setsockopt(zmq.RCVHWM, 2000)
    sock.connect(ipc_endpoint("carState"))
    ready.set()
    go.wait()
    lat, t0, t_last, got = [], None, None, 0
    while got < n and sock.poll(2000):
        with log.Event.from_bytes(sock.recv()) as m:
            lat.append(time.monotonic_ns() - m.logMonoTime)
        t_last = time.monotonic()
        t0 = t0 or t_last
        got += 1
    out.put((lat, got, (t_last or 0) - (t0 or 0)))


def _rp_reader(n: int, out, ready, go) -> None:
    from cereal import messaging
    sm = messaging.SubMaster(["carState"], poll="carState")
    ready.set()
    go.wait()
    lat, t0, t_last, got = [], None, None, 0
    while got < n:
        sm.update(2000)
        if not sm.updated["carState"]:
            break
        # SubMaster keeps the newest message per update; parsed_total counts every message it parsed
        lat.append(time.monotonic_ns() - sm.logMonoTime["carState"])
        t_last = time.monotonic()
        t0 = t0 or t_last
        got = sm.parsed_total["carState"]
    out.put((lat, got, (t_last or 0) - (t0 or 0)))


def run_pair(sender, reader, n: int, hz: float) -> tuple[np.ndarray, int, float]:
    ctx = mp.get_context("spawn")
    out, ready, go = ctx.Queue(), ctx.Event(), ctx.Event()
    r = ctx.Process(target=reader, args=(n, out, ready, go))
    s = ctx.Process(target=sender, args=(n, hz, ready, go))
    r.start()
    s.start()
    lat, got, secs = out.get(timeout=120)
    s.join(30)
    r.join(30)
    return np.array(lat, dtype=np.float64) / 1e6, got, secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency-msgs", type=int, default=500, help="messages at 100 Hz per latency run (500 = 5 s)")
    ap.add_argument("--throughput-msgs", type=int, default=200_000, help="messages per throughput run")
    args = ap.parse_args()
    os.environ.setdefault("ROADPILOT_PREFIX", f"bench{os.getpid()}")
    os.environ.setdefault("ROADPILOT_LOGLEVEL", "ERROR")

    print(f"latency: small carState at 100 Hz, {args.latency_msgs} messages each", flush=True)
    raw_lat, _, _ = run_pair(_raw_sender, _raw_reader, args.latency_msgs, 100.0)
    rp_lat, _, _ = run_pair(_rp_sender, _rp_reader, args.latency_msgs, 100.0)
    rows = [("raw pyzmq+pycapnp", raw_lat), ("PubMaster->SubMaster", rp_lat)]
    for name, lat in rows:
        p50, p99 = np.percentile(lat, 50), np.percentile(lat, 99)
        print(f"  {name:22s} p50 {p50:6.3f} ms   p99 {p99:6.3f} ms   (n={len(lat)})")
    r50 = np.percentile(rp_lat, 50) / np.percentile(raw_lat, 50)
    r99 = np.percentile(rp_lat, 99) / np.percentile(raw_lat, 99)
    print(f"  ratio p50 {r50:.2f}x  p99 {r99:.2f}x   (budget <= 1.5x)", flush=True)

    print(f"throughput: {args.throughput_msgs} prebuilt messages as fast as the sender can send them", flush=True)
    _, raw_n, raw_s = run_pair(_raw_sender, _raw_reader, args.throughput_msgs, 0.0)
    _, rp_n, rp_s = run_pair(_rp_sender, _rp_reader, args.throughput_msgs, 0.0)
    raw_rate, rp_rate = raw_n / max(raw_s, 1e-9), rp_n / max(rp_s, 1e-9)
    print(f"  {'raw pyzmq+pycapnp':22s} {raw_rate / 1e3:7.1f}k msg/s  ({raw_n} parsed)")
    print(f"  {'PubMaster->SubMaster':22s} {rp_rate / 1e3:7.1f}k msg/s  ({rp_n} parsed)")
    verdict = "OK" if rp_rate >= 100e3 else "MISSED"
    print(f"  ratio {rp_rate / raw_rate:.2f}x of raw   (budget >= 100k msg/s: {verdict})")
    ok = max(r50, r99) <= 1.5 and rp_rate >= 100e3
    print(f"budget: {'within' if ok else 'OUTSIDE'} the design's messaging budget")


if __name__ == "__main__":
    main()
