"""The lateral control loop alone, in lockstep and fast: controlsd's torque controller steering the simulator's
car (its C dynamics and platform) through opendbc's Toyota torque limits, with the command pipeline's delay,
at constant speed along a desired-curvature profile. No processes, no camera: it isolates what the
controller does to a car that differs from its parameters (steer gain, friction, extra delay), which a full
drive mixes with vision and planning. The closed-loop scenarios then check the whole stack.

  python -m tools.sim.lib.steer_loop                       # the margin sweep: gain 0.5/1/2, +0.1 s delay
  python -m tools.sim.lib.steer_loop --gain 2 --delay 0.1  # one case
"""

import argparse
import math
from collections import deque
from dataclasses import dataclass, replace

import numpy as np
from opendbc.car import gen_empty_fingerprint
from opendbc.car.car_helpers import interfaces
from opendbc.car.lateral import apply_meas_steer_torque_limits
from opendbc.car.toyota.values import CarControllerParams

from common.realtime import DT_CTRL, DT_MDL
from selfdrive.controls.lib.drive_helpers import (
    LAT_PROCESS_DELAY,
    clip_curvature,
    curvature_from_steering,
    lane_centre_curvature,
    slip_factor,
    smooth_curvature,
)
from selfdrive.controls.lib.latcontrol_torque import LatControlTorque, TorqueParams
from selfdrive.locationd.torque_estimator import CycleSampler, TorqueEstimator
from selfdrive.modeld.constants import X_LINES
from tools.sim.lib.drive_report import oscillation
from tools.sim.lib.dynamics import Inputs, cruising_state, step
from tools.sim.lib.sim_car import DEFAULT_PLATFORM, LKA_FULL_UNITS, sim_platform

PIPELINE_STEPS = 2          # carState -> controlsd -> card -> the car: cycles from a measurement to its torque
VISION_DELAY_STEPS = 5      # a camera frame's lane lines reach the lateral plan this many cycles later (modeld and
                            # controlsd's next cycle)
LANE_WIDTH = 3.7
# the model's frame-to-frame jitter of the lane centre, independent per frame: measured on the sim's highway drive
# (models/driving.onnx), its lane centre 15 m ahead moves 0.013 m RMS above 1 Hz, and the plan's lane-centre
# curvature from it 0.09 m/s² (at 25 m/s) without any motion of the car to explain it
LINE_NOISE_M = 0.01
LINE_NOISE_RAD = 0.0008
PLAN_EVERY = round(DT_MDL / DT_CTRL)


@dataclass(frozen=True)
class LoopResult:
    osc_rms: float          # the torque command's RMS above the report's OSC_HZ (fraction of full torque)
    osc_share: float
    err_rms: float          # m/s², lateral acceleration error (desired - actual) after the first second
    err_max: float
    torque_max: float
    lane_max: float         # m, the largest distance from the lane centre after the first second
    true_factor: float      # m/s² per unit torque the car really delivers at this speed (steady state)
    learnt_factor: float | None = None  # torqued's estimate at the end (with `learn`)
    learnt_after_s: float | None = None  # s until the estimate first came within 10% of true_factor


CURVE_LAT_ACCEL = 0.9      # m/s², the curve's and the S-bend's peak at the loop's speed (a half-torque car makes it)


def road(s: float | np.ndarray, v: float) -> np.ndarray:
    """Curvature (1/m) of the road `s` m along, built for speed v: straight for 3 s, a curve through 2 s
    transitions (as roads are built) for 7 s, straight, then S-bends of 8 s."""
    k = CURVE_LAT_ACCEL / (v * v)
    s = np.asarray(s, dtype=np.float64) / v  # as time at speed v
    ramp = np.clip((s - 3.0) / 2.0, 0.0, 1.0) - np.clip((s - 10.0) / 2.0, 0.0, 1.0)
    bend = np.where(s > 13.0, np.sin(2.0 * np.pi * (s - 13.0) / 8.0), 0.0)
    return k * (ramp + bend)


def lane_centre(s: float, v: float, offset: float, heading: float) -> np.ndarray:
    """The lane centre at X_LINES ahead, in the frame of a car `offset` m left of it, `heading` rad left of its
    direction, `s` m along the road (small angles)."""
    x = np.linspace(0.0, float(X_LINES[-1]), 241)
    k = road(s + x, v)
    slope = np.concatenate(([0.0], np.cumsum(0.5 * (k[1:] + k[:-1]) * np.diff(x))))
    y = np.concatenate(([0.0], np.cumsum(0.5 * (slope[1:] + slope[:-1]) * np.diff(x))))
    return np.interp(X_LINES, x, y) - offset - heading * X_LINES


def car_params(platform: str = DEFAULT_PLATFORM):
    return interfaces[platform].get_params(platform, gen_empty_fingerprint(), [], False, False, False)


def run(gain: float = 1.0, extra_delay_s: float = 0.0, friction: float = 0.0, v: float = 25.0,
        seconds: float = 20.0, platform: str = DEFAULT_PLATFORM, torque: TorqueParams | None = None,
        lanes: bool = True, seed: int = 0, learn: bool = False) -> LoopResult:
    """The loop on `platform`'s simulated car whose EPS delivers `gain` times the torque asked, `extra_delay_s`
    later than the pipeline's own delay, holding `friction` (of full torque) before it moves. `torque`: the
    controller's parameters (default: what carParams says). With `lanes` the plan steers for the lane centre as
    controlsd's lateral planner does, from perfect lane lines seen at 20 Hz VISION_DELAY_STEPS late (the camera loop
    closes through the car's motion); without, the plan is the road's curvature (the steering loop alone). With
    `learn`, torqued's estimator learns the car's response from the loop (as torqued does, once a second) and the
    controller takes it (as controlsd does)."""
    CP = car_params(platform)
    vp = replace(sim_platform(platform).vehicle, eps_friction=friction)
    car_torque = torque or TorqueParams.from_car_params(CP)
    lat = LatControlTorque(car_torque)
    est = TorqueEstimator(TorqueParams.from_car_params(CP).response())
    sampler = CycleSampler(est, CP)
    true_factor = gain * vp.lat_accel_per_torque(v)
    learnt_after = None
    limits = CarControllerParams(CP)
    slip = slip_factor(CP)
    state = cruising_state(vp, 0.0, 0.0, 0.0, v)
    pipe: deque[int] = deque([0] * (PIPELINE_STEPS + round(extra_delay_s / DT_CTRL)))
    plan_k = desired = 0.0
    last = 0
    offset = heading = 0.0  # the car against the lane centre: m left of it, rad left of its direction
    seen: deque[np.ndarray] = deque()
    dist = 0.0
    rng = np.random.default_rng(seed)
    steer_delay = float(CP.steerActuatorDelay) + LAT_PROCESS_DELAY
    n = round(seconds / DT_CTRL)
    cmd, err, lat_err = np.zeros(n), np.zeros(n), np.zeros(n)
    for i in range(n):
        actual = curvature_from_steering(math.degrees(state.steer_angle), CP.steerRatio, CP.wheelbase, v, slip)
        if i % PLAN_EVERY == 0:
            seen.append(lane_centre(dist, v, offset, heading))
        if not lanes:
            plan_k = float(road(dist + v * steer_delay, v)) if i % PLAN_EVERY == 0 else plan_k
        elif i % PLAN_EVERY == VISION_DELAY_STEPS % PLAN_EVERY and len(seen) > VISION_DELAY_STEPS // PLAN_EVERY:
            # controlsd's lateral plan: the lines of a frame that is a while old, the newest carState's curvature
            centre = seen.popleft() + rng.normal(0.0, LINE_NOISE_M) + rng.normal(0.0, LINE_NOISE_RAD) * X_LINES
            k = lane_centre_curvature(X_LINES, centre + LANE_WIDTH / 2, centre - LANE_WIDTH / 2, v, steer_delay, actual)
            plan_k = smooth_curvature(plan_k, k if k is not None else plan_k, DT_MDL)
        desired, _ = clip_curvature(v, desired, plan_k, DT_CTRL)
        out = lat.update(True, v, actual, desired)
        applied = apply_meas_steer_torque_limits(round(out.torque * LKA_FULL_UNITS), last, last, limits)
        last = applied
        pipe.append(applied)
        eps = gain * pipe.popleft() / LKA_FULL_UNITS
        state = step(vp, state, Inputs(eps_torque=eps, accel_active=True), DT_CTRL)
        heading += (state.yaw_rate - state.vx * float(road(dist, v))) * DT_CTRL
        dist += state.vx * DT_CTRL
        offset += (state.vx * math.sin(heading) + state.vy * math.cos(heading)) * DT_CTRL
        cmd[i], err[i] = applied / LKA_FULL_UNITS, out.desired_lateral_accel - out.actual_lateral_accel
        if learn:
            sampler.step(v, math.degrees(state.steer_angle), cmd[i], True, False)
            if sampler.cycle % 100 == 0:
                r = est.update().response
                p = car_torque.learned(r.lat_accel_factor, r.lat_accel_offset, r.friction)
                lat.update_params(p if p is not None else car_torque)
                if learnt_after is None and abs(r.lat_accel_factor / true_factor - 1.0) < 0.1:
                    learnt_after = (i + 1) * DT_CTRL
        lat_err[i] = offset
    osc_rms, osc_share = oscillation(cmd, np.ones(n, bool), DT_CTRL)
    settled = err[round(1.0 / DT_CTRL):]
    return LoopResult(osc_rms or 0.0, osc_share or 0.0, float(np.sqrt(np.mean(settled ** 2))),
                      float(np.max(np.abs(settled))), float(np.max(np.abs(cmd))),
                      float(np.max(np.abs(lat_err[round(1.0 / DT_CTRL):]))), true_factor,
                      est.estimate.response.lat_accel_factor if learn else None, learnt_after)


MARGIN_CASES = (("nominal", 1.0, 0.0), ("gain x0.5", 0.5, 0.0), ("gain x2", 2.0, 0.0), ("+0.1 s delay", 1.0, 0.1),
                ("gain x2, +0.1 s", 2.0, 0.1), ("gain x0.5, +0.1 s", 0.5, 0.1))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m tools.sim.lib.steer_loop", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gain", type=float, help="the car's true torque gain (x carParams); default: the sweep")
    ap.add_argument("--delay", type=float, default=0.0, help="extra actuator delay, s")
    ap.add_argument("--friction", type=float, default=0.0, help="steering friction, fraction of full torque")
    ap.add_argument("--speed", type=float, default=25.0, help="m/s")
    ap.add_argument("--no-lanes", action="store_true", help="steer for the road's curvature, not the lane centre")
    args = ap.parse_args(argv)
    cases = MARGIN_CASES if args.gain is None else (("case", args.gain, args.delay),)
    print(f"{'case':20s} {'osc RMS':>8s} {'osc share':>9s} {'err RMS':>8s} {'err max':>8s} {'|torque| max':>12s}"
          f" {'lane max':>8s}")
    for name, g, d in cases:
        r = run(g, d, args.friction, args.speed, lanes=not args.no_lanes)
        print(f"{name:20s} {r.osc_rms:8.4f} {r.osc_share:9.1%} {r.err_rms:8.3f} {r.err_max:8.3f} {r.torque_max:12.2f}"
              f" {r.lane_max:8.2f}")


if __name__ == "__main__":
    main()
