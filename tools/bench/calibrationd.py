#!/usr/bin/env python3
"""calibrationd's work per camera frame: the lane lines' vanishing point (selfdrive/locationd/vanishing_point.py),
p50/p99 wall and CPU time, on the real Udacity clip at its own 960x540 (../shared/data) and on simulator frames at
1164x874 (the default camera, and a 90 deg camera with lens distortion).

calibrationd runs it on every frame while calibrating (VP_EVERY; every 4th once calibrated) beside modeld on 2
cores; budget: p99 <= BUDGET_MS, a fifth of a frame's 50 ms. The last column is p99 / budget: below 1 is within it.
"""

import dataclasses
import os
import time

import av
import numpy as np

from common.transformations.camera import CameraModel
from selfdrive.locationd.vanishing_point import vanishing_point
from tools.sim.lib.renderer import Look, Renderer, lane_centre_frames

BUDGET_MS = 10.0
CLIP = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "udacity-dashcam",
                    "solidWhiteRight.mp4")


def measure(name: str, frames: list[np.ndarray], cam: CameraModel) -> None:
    wall, cpu, found = [], [], 0
    for i, f in enumerate(frames):
        w0, c0 = time.perf_counter(), time.process_time()
        found += vanishing_point(f, cam, seed=i) is not None
        wall.append(1e3 * (time.perf_counter() - w0))
        cpu.append(1e3 * (time.process_time() - c0))
    p50, p99 = np.percentile(wall, [50, 99])
    print(f"{name:34s} {len(frames):4d} frames, point in {found / len(frames):4.0%}: wall p50 {p50:5.2f} p99 "
          f"{p99:5.2f} ms, cpu p99 {np.percentile(cpu, 99):5.2f} ms; p99/budget {p99 / BUDGET_MS:.2f}")


def main() -> None:
    if os.path.isfile(CLIP):
        with av.open(CLIP) as c:
            frames = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
        measure("udacity 960x540 (60 deg)", frames, CameraModel.from_fov(960, 540, 60.0))
    else:
        print(f"(no {CLIP}: simulator frames only)")
    sim = [f[:874].copy() for f in lane_centre_frames(100, seed=4)]
    measure("sim 1164x874 default camera", sim, CameraModel())
    wide = dataclasses.replace(CameraModel.from_fov(CameraModel.width, CameraModel.height, 90.0), dist=(-0.1,))
    from tools.sim.lib.dynamics import VehicleState
    from tools.sim.lib.scenarios import make_world
    world, r = make_world("highway", 4), Renderer(camera=wide, look=Look.random(5))
    d = world.road.lane_center_offset(world.ego_lane)
    frames = []
    for i in range(100):
        x, y, yaw = world.road.position(world.ego_s + world.ego_speed * i * 0.05, d)
        frames.append(r.render(world, VehicleState(x=x, y=y, yaw=yaw, vx=world.ego_speed))[:874].copy())
        world.step(0.05)
    measure("sim 1164x874 90 deg, distorted", frames, wide)


if __name__ == "__main__":
    main()
