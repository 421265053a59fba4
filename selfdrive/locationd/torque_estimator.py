"""torqued's logic without sockets: the car's steering response, learnt while roadpilot steers.

The torque controller (selfdrive/controls/lib/latcontrol_torque.py) turns a lateral acceleration into torque with
carParams' latAccelFactor (m/s² per unit torque), latAccelOffset and friction. Real cars differ from those numbers
(tyres, load, wear, another EPS calibration), and a feedforward that is 2x off is a loop gain 2x off. So while
lateral control is active we collect (lateral acceleration, torque) points and fit

    torque = (lat_accel - offset) / factor + friction / factor * direction

by least squares, where `direction` (-1..1) is where the steering is moving (friction holds against motion).

What "lateral acceleration" is here: the curvature the steering angle gives through carParams' vehicle model,
times v², the very measure controlsd closes its loop on. A yaw-rate measure would need a yaw-rate signal, which
opendbc's carState does not carry for our cars and a webcam-and-adapter installation has no IMU for; and the road's
roll is not known either, so a steady camber ends up in the offset.

Points: 10 per second of steady steering (lateral jerk below LA_RATE_MAX, the car above MIN_SPEED, not steered by
the driver, not saturated), in bins of lateral acceleration so that a long straight does not drown the curves.
The fit drops outliers (beyond OUTLIER_MADS median absolute deviations) and must land within BOUNDS of carParams'
factor. Its confidence grows with the points (FULL_POINTS) and the slope's precision (its relative standard error,
SLOPE_ERROR); what controlsd gets is the prior (carParams, or the value stored from earlier drives of this car) moved
towards the fit by that confidence.
"""

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from common.realtime import DT_CTRL
from selfdrive.controls.lib.drive_helpers import curvature_from_steering, finite_or, slip_factor

MIN_SPEED = 10.0               # m/s: below, the vehicle model's curvature and the torque's effect are less certain
LA_RATE_MAX = 0.5              # m/s³: steadier than this, the torque holds the car where it is (EPS dynamics settled)
DIRECTION_RATE = 0.1           # m/s³ of lateral jerk that counts as moving one way (friction's direction)
TORQUE_SATURATED = 0.95        # of full torque: the car's response there says nothing about the factor
ENGAGED_SETTLE_S = 1.0         # s after lateral control comes on before points count
DECIMATE = 10                  # keep 1 steady sample in this many (100 Hz -> 10 Hz: neighbours say the same)
BIN_EDGES = (-1.5, -0.8, -0.4, -0.15, 0.15, 0.4, 0.8, 1.5)   # m/s² of lateral acceleration
BIN_POINTS = 400               # per bin: 40 s of steady steering
FULL_POINTS = 300              # points for full confidence: 30 s of steady steering (a sim fit is steady from ~100)
MIN_SPREAD = 0.1               # m/s², lateral acceleration's standard deviation below which nothing is learnt
SLOPE_ERROR = (0.02, 0.10)     # the slope's relative standard error at full and at no confidence
MIN_POINTS = 100
OUTLIER_MADS = 4.0
BOUNDS = (0.3, 3.0)            # x carParams' factor: a fit outside is rejected, not used
OFFSET_MAX = 0.5               # m/s²
FRICTION_MAX = 0.5             # m/s²


@dataclass(frozen=True)
class SteerResponse:
    lat_accel_factor: float    # m/s² per unit torque
    lat_accel_offset: float    # m/s²
    friction: float            # m/s²

    def finite(self) -> bool:
        return all(math.isfinite(x) for x in (self.lat_accel_factor, self.lat_accel_offset, self.friction))

@dataclass(frozen=True)
class Estimate:
    response: SteerResponse    # what controlsd should use: the prior moved towards the fit by `confidence`
    fit: SteerResponse | None  # the fit alone (None: not enough points, or rejected)
    confidence: float          # 0..1
    points: int
    source: str                # "carParams", "stored" (an earlier drive's), "learning", "learned"
    rejected: str = ""         # why the last fit was not used (empty: it was, or there was none)


def within_bounds(r: SteerResponse, car_factor: float) -> str:
    """Empty when `r` is a plausible response of a car whose parameters say `car_factor`; else why not."""
    if not r.finite():
        return "not finite"
    lo, hi = BOUNDS[0] * car_factor, BOUNDS[1] * car_factor
    if not lo <= r.lat_accel_factor <= hi:
        return (f"factor {r.lat_accel_factor:.2f} outside {lo:.2f}..{hi:.2f} m/s² "
                f"(x{BOUNDS[0]:g}..x{BOUNDS[1]:g} carParams)")
    if abs(r.lat_accel_offset) > OFFSET_MAX:
        return f"offset {r.lat_accel_offset:.2f} beyond ±{OFFSET_MAX:g} m/s²"
    if not 0.0 <= r.friction <= FRICTION_MAX:
        return f"friction {r.friction:.2f} outside 0..{FRICTION_MAX:g} m/s²"
    return ""


class TorqueEstimator:
    def __init__(self, car: SteerResponse, stored: SteerResponse | None = None):
        """`car`: what carParams says; `stored`: an earlier drive's estimate for this car (checked, then the prior)."""
        self.car = car
        self.stored = stored if stored is not None and not within_bounds(stored, car.lat_accel_factor) else None
        self.prior = self.stored or car
        self.bins = [deque(maxlen=BIN_POINTS) for _ in range(len(BIN_EDGES) + 1)]
        self.active_since: float | None = None
        self.steady = 0
        self.last_fit: tuple[SteerResponse, float] | None = None  # this drive's last usable fit, its slope's error
        self.estimate = Estimate(self.prior, None, 0.0, 0, "stored" if self.stored else "carParams")

    def add(self, t: float, v_ego: float, lat_accel: float, lat_accel_rate: float, torque: float,
            lat_active: bool, steering_pressed: bool) -> bool:
        """One control cycle at time t (s): the lateral acceleration now, its rate, the torque that holds it
        (the command one actuator delay ago). True when it became a point."""
        if not lat_active or steering_pressed:
            self.active_since = None
            return False
        if self.active_since is None:
            self.active_since = t
        ok = (t - self.active_since >= ENGAGED_SETTLE_S and v_ego >= MIN_SPEED and abs(lat_accel_rate) < LA_RATE_MAX
              and abs(torque) < TORQUE_SATURATED and all(math.isfinite(x) for x in (lat_accel, lat_accel_rate, torque)))
        if not ok:
            return False
        self.steady += 1
        if self.steady % DECIMATE:
            return False
        direction = min(max(lat_accel_rate / DIRECTION_RATE, -1.0), 1.0)
        self.bins[int(np.searchsorted(BIN_EDGES, lat_accel))].append((lat_accel, direction, torque))
        return True

    def points(self) -> np.ndarray:
        rows = [p for b in self.bins for p in b]
        return np.array(rows, dtype=np.float64).reshape(-1, 3)

    def update(self) -> Estimate:
        """Fits the points collected so far; the new estimate (also kept in `self.estimate`)."""
        pts = self.points()
        n = len(pts)
        fit, rel_se, rejected = (None, math.inf, "") if n < MIN_POINTS else self._fit(pts)
        if fit is not None:
            self.last_fit = (fit, rel_se)
        elif self.last_fit is not None:
            # nothing to fit now (a long straight's points thinned the spread below MIN_SPREAD) or a fit refused:
            # what this drive learnt stays (it fell back to carParams: a car steering half as much lost its estimate
            # on a highway, sim mixed --steer-gain 0.5)
            fit, rel_se = self.last_fit
        conf = 0.0
        if fit is not None:
            lo, hi = SLOPE_ERROR
            conf = min(1.0, n / FULL_POINTS) * min(max((hi - rel_se) / (hi - lo), 0.0), 1.0)
        if fit is None or conf == 0.0:
            response, source = self.prior, ("stored" if self.stored else "carParams")
        else:
            p = self.prior
            response = SteerResponse(*(a + conf * (b - a) for a, b in (
                (p.lat_accel_factor, fit.lat_accel_factor), (p.lat_accel_offset, fit.lat_accel_offset),
                (p.friction, fit.friction))))
            source = "learned" if conf >= 1.0 else "learning"
        self.estimate = Estimate(response, fit, conf, n, source, rejected)
        return self.estimate

    def _fit(self, pts: np.ndarray) -> tuple[SteerResponse | None, float, str]:
        """(the response, the slope's relative standard error, why it was rejected)."""
        la, direction, torque = pts[:, 0], pts[:, 1], pts[:, 2]
        if float(np.std(la)) < MIN_SPREAD:
            return None, math.inf, ""  # one lateral acceleration (a straight road) says nothing about the slope
        A = np.column_stack((la, np.ones_like(la), direction))
        keep = np.ones(len(pts), bool)
        for _ in range(2):  # fit, drop what lies too far from it, fit again
            coef, *_ = np.linalg.lstsq(A[keep], torque[keep], rcond=None)
            resid = torque - A @ coef
            mad = float(np.median(np.abs(resid[keep] - np.median(resid[keep])))) * 1.4826
            keep = np.abs(resid) <= OUTLIER_MADS * max(mad, 1e-3)
            if keep.sum() < MIN_POINTS:
                return None, math.inf, f"{int(keep.sum())} points left after dropping outliers"
        coef, *_ = np.linalg.lstsq(A[keep], torque[keep], rcond=None)  # the fit of the points that are kept
        slope, intercept, fric = (float(x) for x in coef)
        if not slope > 0:
            return None, math.inf, f"torque does not grow with lateral acceleration (slope {slope:.3g})"
        # the slope's standard error from the residuals (neighbouring points are not independent: FULL_POINTS and
        # the bins keep a few seconds of one curve from deciding alone)
        k = int(keep.sum())
        resid = torque[keep] - A[keep] @ coef
        cov = np.linalg.pinv(A[keep].T @ A[keep]) * float(resid @ resid) / max(k - 3, 1)
        rel_se = math.sqrt(max(float(cov[0, 0]), 0.0)) / slope
        # friction cannot push the way the steering moves: a slightly negative fit is a friction-free rack's noise
        r = SteerResponse(1.0 / slope, -intercept / slope, max(fric / slope, 0.0))
        why = within_bounds(r, self.car.lat_accel_factor)
        return (None, math.inf, why) if why else (r, rel_se, "")

    def to_json(self, car_fingerprint: str) -> dict:
        r = self.estimate.response
        return {"car": car_fingerprint, "latAccelFactor": r.lat_accel_factor, "latAccelOffset": r.lat_accel_offset,
                "friction": r.friction, "confidence": self.estimate.confidence, "points": self.estimate.points}


def stored_response(value: object, car_fingerprint: str) -> SteerResponse | None:
    """The stored estimate (the LiveTorqueParameters param) when it is this car's; None otherwise."""
    if not isinstance(value, dict) or value.get("car") != car_fingerprint:
        return None
    try:
        r = SteerResponse(float(value["latAccelFactor"]), float(value["latAccelOffset"]), float(value["friction"]))
    except (KeyError, TypeError, ValueError):
        return None
    return r if r.finite() else None


RATE_SPAN = 10                 # control cycles over which the lateral acceleration's rate is taken (0.1 s)


class CycleSampler:
    """What torqued does with each control cycle before the estimator sees it: the lateral acceleration of the
    steering angle through carParams' vehicle model, its rate over RATE_SPAN cycles, and the torque command of one
    steerActuatorDelay ago (the one the car's steering answers now). Time is counted in cycles."""

    def __init__(self, est: TorqueEstimator, CP):
        self.est = est
        self.ratio, self.wheelbase, self.slip = float(CP.steerRatio), float(CP.wheelbase), slip_factor(CP)
        lag = max(round(finite_or(CP.steerActuatorDelay, 0.1) / DT_CTRL), 0)
        self.torques: deque[float] = deque([0.0] * (lag + 1), maxlen=lag + 1)  # [0]: the command `lag` cycles ago
        self.las: deque[float] = deque(maxlen=RATE_SPAN + 1)
        self.cycle = 0

    def step(self, v_ego: float, angle_deg: float, torque_cmd: float, lat_active: bool, steering_pressed: bool) -> bool:
        """One control cycle; True when it gave the estimator a point."""
        self.cycle += 1
        v = finite_or(v_ego, 0.0)
        angle = finite_or(angle_deg, 0.0)
        la = curvature_from_steering(angle, self.ratio, self.wheelbase, v, self.slip) * v * v \
            if abs(angle) < 3600.0 else math.nan
        self.las.append(la)
        rate = (self.las[-1] - self.las[0]) / ((len(self.las) - 1) * DT_CTRL) if len(self.las) > 1 else 0.0
        self.torques.append(finite_or(torque_cmd, 0.0))
        return self.est.add(self.cycle * DT_CTRL, v, la, rate, self.torques[0], lat_active, steering_pressed)
