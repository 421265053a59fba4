"""Lateral plan helpers: the model's path → a delay-compensated, rate-limited desired curvature.

Geometry: the path is points (x forward, y left) in the car frame. Heading ψ along the path is the
direction between consecutive points, curvature κ = dψ/ds. The car steers with a delay, so what we
command now only acts `delay` seconds later; over that time the car travels d = v·delay, and to reach
the path's heading at d the average curvature must be ψ(d)/d. Assuming curvature changes linearly from
today's κ0 over that stretch, the curvature to command is 2·ψ(d)/d − κ0.

Where the model sees both lines of the ego lane, the target is the lane centre instead: pure pursuit to the
point between the lines at distance d, κ = 2·y / (d² + y²) (the arc through the car and that point). For an
offset e and heading error θ this gives e'' = −(2v/d)·e' − (2v²/d²)·e: damped (ζ ≈ 0.71) on its own, and exact
on a circular road.
"""

import math
from dataclasses import dataclass

import numpy as np

MAX_LATERAL_ACCEL = 3.0     # m/s², comfort limit on commanded curvature·v²
MAX_LATERAL_JERK = 5.0      # m/s³, limits how fast the commanded curvature may change
MAX_CURVATURE = 0.2         # 1/m, about a 5 m radius: tighter than any car turns
MIN_SPEED_FOR_LIMITS = 1.0  # m/s, limits use at least this speed (they divide by v²)
MIN_LOOKAHEAD = 0.5         # m, shortest distance the lag compensation looks ahead
MAX_PATH_EXTENT = 1e4       # m; a plan reaching further is garbage (and would overflow the geometry)
LAT_PROCESS_DELAY = 0.1     # s, camera → model → plan → control, before the steering actuator's own delay
# s: the heading target is never nearer than the model plan's first sample after the car (T_PATH[1]). Nearer, it
# is interpolated towards the extrapolated heading at the car, the least certain part of the plan, and with a
# ~0.35 s camera-to-steering loop a 0.22 s target (RAV4 at 25 m/s: 5.5 m) makes the heading gain 2 / 0.22 s,
# which with the real model oscillated into the driver's hands every few seconds (sim, highway)
MIN_LOOKAHEAD_T = 0.5
# Lane centring: aim at the centre between the model's two ego lane lines, when it sees both. The model's path
# is its guess of where a human would drive (it returns to the centre lazily, with the wander of the drivers it
# learnt from); the lines place the centre within ~0.05 m at 5-20 m (sim, highway, models/driving.onnx).
LANE_PROB_FULL = (0.5, 0.8)   # min of the ego lines' probabilities: path only below the first, lines above the second
LANE_STD_FULL = (0.3, 0.6)    # m, max of their near std: lines only below the first, path only above the second
# s of travel from the pose after the delay to the aim point. Measured closed loop (sim, 60 s drives): aiming from
# where the car is now, 0.5 s swung the car into the driver's hands (steering wobble 2.7 deg) and 0.7-0.9 s held it
# within 0.19-0.23 m of the centre on the highway (the path before: 0.42 m). From the pose after the delay, 0.9 s
# aims 30 m out at highway speed, where the model's lines bend too little, and the car ran 0.15-0.2 m wide in
# curves; 0.6 s held highway and curvy within 0.16 m and 0.14 m (mean 0.06 and 0.04 m)
LANE_LOOKAHEAD_T = 0.6
LANE_LOOKAHEAD_M = (5.0, 60.0)  # m, the model's line samples (X_LINES) the aim point stays within
# s, the plan's curvature is low-passed with this time constant. The model's lane lines jitter from frame to frame
# (its lane centre 15 m ahead: 0.013 m RMS above 1 Hz on the sim's highway, which pure pursuit turns into 0.09 m/s²
# of lateral acceleration asked at 25 m/s), and the steering followed it: 0.065 of full torque above 1 Hz, peaking
# at 3.4 Hz where the loop through the car's curvature rings. In the lateral loop model (tools/sim/lib/steer_loop.py,
# lane lines with that jitter) 0.2 s halves that oscillation and the lateral acceleration error at 15-32 m/s and
# leaves the distance to the lane centre as it was; 0.4 s lets a car with half the torque run wide; compensating the
# lag in the delay the pursuit predicts over made it worse
PLAN_SMOOTH_S = 0.2


def finite_or(x: float, default: float) -> float:
    """x when it is a finite number, else `default`: inputs from messages may carry NaN/inf."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return default
    return x if math.isfinite(x) else default


def path_geometry(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(arc length at each point, heading at each point, curvature at each point) of a path, or None when
    the path is unusable (fewer than 3 points, non-finite or absurd values, or it does not move)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 3 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        return None
    if max(np.abs(x).max(), np.abs(y).max()) > MAX_PATH_EXTENT:
        return None
    dx, dy = np.diff(x), np.diff(y)
    ds = np.hypot(dx, dy)
    keep = ds > 1e-3  # the model repeats points when the car is stopped: they have no direction
    if keep.sum() < 2:
        return None
    dx, dy, ds = dx[keep], dy[keep], ds[keep]
    seg_psi = np.arctan2(dy, dx)
    turn = np.diff(seg_psi)
    turn -= 2 * np.pi * np.round(turn / (2 * np.pi))  # unwrap: a path never turns half a circle between points
    seg_psi = seg_psi[0] + np.concatenate(([0.0], np.cumsum(turn)))
    s = np.concatenate(([0.0], np.cumsum(ds)))
    # heading at points: segment headings belong to segment midpoints; the ends are extrapolated
    # linearly (clamping would make the first point's heading that of the first chord, off by κ·ds/2)
    mid = s[:-1] + ds / 2
    psi = np.interp(s, mid, seg_psi)
    psi[0] = seg_psi[0] - (seg_psi[1] - seg_psi[0]) / (mid[1] - mid[0]) * mid[0]
    psi[-1] = seg_psi[-1] + (seg_psi[-1] - seg_psi[-2]) / (mid[-1] - mid[-2]) * (s[-1] - mid[-1])
    kappa_mid = turn / np.maximum((ds[:-1] + ds[1:]) / 2, 1e-3)
    kappa = np.interp(s, s[1:-1], kappa_mid)
    return s, psi, kappa


Geometry = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class LaneView:
    """The model's two ego lane lines: y (m, left positive) at x (m ahead), with probability and near std each."""
    x: np.ndarray
    left: np.ndarray
    right: np.ndarray
    probs: tuple[float, float]
    stds: tuple[float, float]


def lag_compensated_curvature(x: np.ndarray, y: np.ndarray, v_ego: float, delay: float,
                              geo: Geometry | None = None) -> float | None:
    """The curvature to command now so the car follows the path after `delay` s of actuator lag, or None
    when the path is unusable. `geo`: the path's geometry when the caller already has it."""
    geo = path_geometry(x, y) if geo is None else geo
    if geo is None:
        return None
    s, psi, kappa = geo
    d = max(max(v_ego, 0.0) * max(delay, MIN_LOOKAHEAD_T), MIN_LOOKAHEAD)
    d = min(d, s[-1])
    kappa0 = float(kappa[0])
    if d < MIN_LOOKAHEAD:
        return kappa0
    # ψ(d) against the car's own heading (the car frame's x axis), not against the path's first heading: a path
    # that leaves the car at an angle (back towards the lane centre) is a turn to make, not one already made
    avg = float(np.interp(d, s, psi)) / d
    return 2.0 * avg - kappa0


def lane_centre_curvature(x: np.ndarray, left: np.ndarray, right: np.ndarray, v_ego: float, delay: float = 0.0,
                          curvature_now: float = 0.0) -> float | None:
    """Pure pursuit to the lane centre, from where the car will be when the command acts: it drives on at
    `curvature_now` for `delay` s, then takes the arc (tangent to its heading there) through the point between
    the two lines LANE_LOOKAHEAD_T further on. None when the lines are unusable."""
    x, left, right = (np.asarray(a, dtype=np.float64) for a in (x, left, right))
    if not (x.shape == left.shape == right.shape and x.ndim == 1 and len(x) >= 2):
        return None
    if not (np.isfinite(x).all() and np.isfinite(left).all() and np.isfinite(right).all()) or np.any(np.diff(x) <= 0):
        return None
    if x[-1] < LANE_LOOKAHEAD_M[0] or x[0] > LANE_LOOKAHEAD_M[1]:  # lines that end before 5 m or start past 60 m
        return None
    v = max(finite_or(v_ego, 0.0), 0.0)
    k0 = min(max(finite_or(curvature_now, 0.0), -MAX_CURVATURE), MAX_CURVATURE)
    # the pose after the delay, on an arc of k0 (small angles: the lanes are sampled straight ahead)
    travel = v * max(finite_or(delay, 0.0), 0.0)
    heading = k0 * travel
    px, py = travel, 0.5 * k0 * travel * travel
    xt = min(max(px + v * LANE_LOOKAHEAD_T, LANE_LOOKAHEAD_M[0], x[0]), LANE_LOOKAHEAD_M[1], x[-1])
    yt = 0.5 * (float(np.interp(xt, x, left)) + float(np.interp(xt, x, right)))
    if abs(yt) > MAX_PATH_EXTENT:
        return None
    # the aim point in the frame of the pose after the delay
    dx, dy = xt - px, yt - py
    c, sn = math.cos(heading), math.sin(heading)
    ax, ay = c * dx + sn * dy, -sn * dx + c * dy
    if ax < MIN_LOOKAHEAD:  # the delay carries the car past the lines' end: aim at what is left from here
        ax, ay = xt, yt
    return 2.0 * ay / (ax * ax + ay * ay)


def lane_weight(probs: tuple[float, float], stds: tuple[float, float]) -> float:
    """0..1: how much the lane lines steer (the rest is the model's path), from the ego lines' probabilities and
    near std; 0 for anything non-finite."""
    p, sd = min(finite_or(v, 0.0) for v in probs), max(finite_or(v, math.inf) for v in stds)
    w_p = np.interp(p, LANE_PROB_FULL, (0.0, 1.0))
    w_s = np.interp(sd, LANE_STD_FULL, (1.0, 0.0)) if math.isfinite(sd) else 0.0
    return float(w_p * w_s)


def smooth_curvature(prev: float, new: float, dt: float) -> float:
    """One step of the plan's low-pass (PLAN_SMOOTH_S) from `prev` towards `new`; a non-finite value is not taken."""
    prev = finite_or(prev, 0.0)
    return prev + (finite_or(new, prev) - prev) * min(1.0, dt / PLAN_SMOOTH_S)


def clip_curvature(v_ego: float, prev: float, new: float, dt: float) -> tuple[float, bool]:
    """`new` limited to the lateral accel limit and, from `prev`, to the lateral jerk limit over `dt`.
    Returns (curvature, whether it was limited)."""
    v2 = max(v_ego, MIN_SPEED_FOR_LIMITS) ** 2
    max_k = min(MAX_LATERAL_ACCEL / v2, MAX_CURVATURE)
    step = MAX_LATERAL_JERK / v2 * dt
    prev = finite_or(prev, 0.0)
    new = finite_or(new, prev)
    out = min(max(new, prev - step), prev + step)
    out = min(max(out, -max_k), max_k)  # also when prev is beyond a limit that shrank as speed rose
    return out, abs(out - new) > 1e-9


def desired_curvature(x: np.ndarray, y: np.ndarray, model_curvature: float, v_ego: float, steer_delay: float,
                      geo: Geometry | None = None, lanes: LaneView | None = None, curvature_now: float = 0.0) -> float:
    """The curvature to command: pure pursuit to the lane centre where the model sees both ego lines
    (`lanes`), else (and blended in between, see lane_weight) the model's path (x, y) compensated for the whole
    lateral delay; the model's own desired curvature when neither is usable. `curvature_now`: what the car drives
    now (the lane pursuit predicts where that takes it over the delay). Always finite."""
    delay = finite_or(steer_delay, 0.0) + LAT_PROCESS_DELAY
    k = lag_compensated_curvature(x, y, finite_or(v_ego, 0.0), delay, geo)
    k = finite_or(k if k is not None else model_curvature, 0.0)
    if lanes is None:
        return k
    w = lane_weight(lanes.probs, lanes.stds)
    k_lane = lane_centre_curvature(lanes.x, lanes.left, lanes.right, v_ego, delay, curvature_now) if w > 0.0 else None
    if k_lane is None:
        return k
    return finite_or(w * k_lane + (1.0 - w) * k, k)


def slip_factor(CP) -> float:
    """The car's slip factor (s²/m², negative for an understeering car) from carParams' mass, axle positions and
    tyre stiffnesses (openpilot's vehicle model: curvature = δ / L / (1 - slip_factor · v²)); 0 (a kinematic
    bicycle) when carParams does not say."""
    try:
        m, L, a_f = float(CP.mass), float(CP.wheelbase), float(CP.centerToFront)
        c_f, c_r = float(CP.tireStiffnessFront), float(CP.tireStiffnessRear)
    except (AttributeError, TypeError, ValueError):
        return 0.0
    a_r = L - a_f
    if not all(math.isfinite(x) and x > 0 for x in (m, L, a_f, a_r, c_f, c_r)):
        return 0.0
    sf = m * (c_f * a_f - c_r * a_r) / (L * L * c_f * c_r)
    return sf if abs(sf) < 0.01 else 0.0  # beyond that the numbers are not a car's


def _speed_factor(v_ego: float, slip: float) -> float:
    # 1 - slip · v², kept positive (an oversteering car's critical speed is not a number to divide by)
    return max(1.0 - slip * finite_or(v_ego, 0.0) ** 2, 0.1)


def curvature_from_steering(angle_deg: float, steer_ratio: float, wheelbase: float, v_ego: float = 0.0,
                            slip: float = 0.0) -> float:
    """The path curvature of a car with this steering wheel angle at speed v_ego: a bicycle whose tyres slip
    (an understeering car turns less than its wheels point, by 1 / (1 - slip · v²): about 0.6 for a RAV4 at
    25 m/s); with slip 0 the kinematic bicycle."""
    return math.tan(math.radians(angle_deg) / steer_ratio) / wheelbase / _speed_factor(v_ego, slip)


def steering_from_curvature(curvature: float, steer_ratio: float, wheelbase: float, v_ego: float = 0.0,
                            slip: float = 0.0) -> float:
    """The steering wheel angle (deg) for this curvature: the inverse of curvature_from_steering."""
    return math.degrees(math.atan(curvature * wheelbase * _speed_factor(v_ego, slip)) * steer_ratio)
