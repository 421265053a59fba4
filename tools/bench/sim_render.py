#!/usr/bin/env python3
"""The simulator's road camera renderer: milliseconds per 1164x874 NV12 frame on one core.

For each scenario the ego drives along its lane at the scenario's speed (20 Hz frames, traffic stepped
between frames, not timed) and every frame is rendered twice-looked: the plain look and a randomised one
(noise, blur, vignette, tone curve). OpenCV is pinned to one thread. Wall time per frame is what the
20 Hz camera loop feels; CPU time (this process only) is printed beside it because on a shared machine
the wall time also counts other processes' turns.

Design budget: <= 20 ms per frame on one core (p99).
"""

import argparse
import os
import time

import cv2
import numpy as np

from tools.sim.lib.dynamics import VehicleState
from tools.sim.lib.renderer import Look, Renderer
from tools.sim.lib.scenarios import SCENARIOS, make_world

BUDGET_MS = 20.0
DT = 0.05


def bench(name: str, look: Look, frames: int, warmup: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    world = make_world(name, seed)
    renderer = Renderer(look=look)
    out = np.empty((874 * 3 // 2, 1164), np.uint8)
    d = world.road.lane_center_offset(world.ego_lane)
    wall, cpu = [], []
    for i in range(warmup + frames):
        s = world.ego_s + world.ego_speed * i * DT
        x, y, yaw = world.road.position(s, d)
        ego = VehicleState(x=x, y=y, yaw=yaw, vx=world.ego_speed)
        t0, c0 = time.perf_counter(), time.process_time()
        renderer.render(world, ego, out=out)
        t1, c1 = time.perf_counter(), time.process_time()
        if i >= warmup:
            wall.append(t1 - t0)
            cpu.append(c1 - c0)
        world.step(DT)
    return np.array(wall) * 1e3, np.array(cpu) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scenarios", nargs="+", default=["highway", "curvy", "suburban", "mixed", "stop_and_go"],
                    choices=sorted(SCENARIOS))
    args = ap.parse_args()
    cv2.setNumThreads(1)
    print(f"renderer, 1164x874 NV12, {args.frames} frames each, cv2 threads {cv2.getNumThreads()}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'scenario':<12} {'look':<8} {'wall p50':>9} {'wall p99':>9} {'cpu p50':>8} {'cpu p99':>8} "
          f"{'p99/budget':>11}")
    worst = 0.0
    for name in args.scenarios:
        for label, look in (("plain", Look.plain()), ("random", Look.random(args.seed + 1))):
            wall, cpu = bench(name, look, args.frames, args.warmup, args.seed)
            p = lambda a, q: float(np.percentile(a, q))
            worst = max(worst, p(wall, 99))
            print(f"{name:<12} {label:<8} {p(wall, 50):8.2f}  {p(wall, 99):8.2f}  {p(cpu, 50):7.2f}  {p(cpu, 99):7.2f}"
                  f"  {p(wall, 99) / BUDGET_MS:10.2f}x")
    print(f"worst wall p99 {worst:.2f} ms = {worst / BUDGET_MS:.2f}x the {BUDGET_MS:.0f} ms budget")


if __name__ == "__main__":
    main()
