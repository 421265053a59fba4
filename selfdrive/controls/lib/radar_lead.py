"""The lead from the car's radar, where it has one: the radar track that is the model's lead.

The camera model places the lead well enough but tells its speed late: its speed comes from how its distance
changes over frames, and while a lead brakes from 12 m/s to a stop that lagged by 2-3 m/s, too late to brake
gently (stop_and_go in the simulator: the supervising driver took over). A radar measures the relative speed
itself, every 50 ms, to ~0.1 m/s. So the radar says where the lead is and how fast it goes, and the model says
which radar track is the lead: the track nearest the model's lead distance (within a gate that allows the model's
distance error), on the model's path. The gate is tight near (4 m + 20%: a farther car taken for a near lead the
radar misses would be followed too close) and wide far, where the model's distance is short by up to a third (it
read a car at 100 m at ~67 m, sim highway) and a wrong match leaves seconds to correct. The track followed last
time is kept while it stays in the gate, so a car beside the lead does not steal it. The lead's acceleration,
which nothing measures, is filtered from its speed (a Kalman filter over speed and acceleration, white jerk).

No radar (a car without one, its bus not connected, a message missing or invalid), no match or no model lead:
the planner falls back to the model's lead (lead_tracker.py). The radar alone never makes a lead: roadside
clutter and cars in the next lane are radar tracks too, and which one is in our lane is what the model is for.
"""

import math
from dataclasses import dataclass

import numpy as np

from selfdrive.controls.lib.long_mpc import Lead

CAMERA_TO_FRONT = 1.5      # m from the camera (behind the windshield) to the front bumper, where radar distances start
                           # (the simulated cars: 1.66 and 1.8 m); leads are placed from the camera, as modelV2's are
GATE_M = 4.0               # m, plus a fraction of the distance: how far a track may be from the model's lead distance
GATE_FRAC = ((40.0, 80.0), (0.2, 0.6))  # that fraction over the model's lead distance (m): tight near, wide far
PATH_HALF_WIDTH = 2.0      # m: a track further than this from the model's path is in another lane
SPEED_STD = 0.15           # m/s, a radar speed's error (quantisation 0.025 m/s, measurement noise)
JERK_NOISE = 4.0           # m/s³, how fast the lead's acceleration may change
NEW_ACCEL_STD = 2.0        # m/s², how unsure a new track's acceleration (0) is
MAX_AGE_S = 0.15           # radar data older than this (three missed cycles) is not used
RADAR_PERIOD_S = 0.05      # the radar's cycle (20 Hz)
MAX_CYCLES = 10            # more cycles than this between two radar messages start the filter again


@dataclass(frozen=True)
class RadarPoint:
    track_id: int
    d: float         # m ahead of the front bumper
    y: float         # m, left positive
    v_rel: float     # m/s, the target's speed minus ours


@dataclass(frozen=True)
class RadarView:
    """One radar cycle (liveTracks) as the planner uses it."""
    t: float                          # s, when it was measured (the planner's clock: logMonoTime)
    points: tuple[RadarPoint, ...]


class RadarLead:
    def __init__(self):
        self.track_id: int | None = None
        self.t = 0.0
        self.va = np.zeros(2)           # the lead's speed and acceleration
        self.p = np.eye(2)

    def reset(self) -> None:
        self.track_id = None

    def update(self, radar: RadarView | None, now: float, vision: Lead | None, v_ego: float,
               path_x: np.ndarray, path_y: np.ndarray) -> Lead | None:
        """The lead from the radar track matching `vision` (the model's lead), or None: use the model's."""
        if radar is None or vision is None or now - radar.t > MAX_AGE_S or not math.isfinite(v_ego):
            self.reset()
            return None
        point = self._match(radar.points, vision, path_x, path_y)
        if point is None:
            self.reset()
            return None
        v_lead = v_ego + point.v_rel
        # the time between radar cycles in whole cycles: stamps are taken when card published them, and a lockstep
        # drive runs faster than real time, but the radar still measured once per period
        cycles = round((radar.t - self.t) / RADAR_PERIOD_S)
        if point.track_id != self.track_id or radar.t < self.t or cycles > MAX_CYCLES:
            self.track_id = point.track_id
            self.va, self.p = np.array([v_lead, 0.0]), np.diag([SPEED_STD ** 2, NEW_ACCEL_STD ** 2])
        elif radar.t > self.t:
            self._filter(v_lead, RADAR_PERIOD_S * max(cycles, 1))
        self.t = radar.t
        return Lead(x=max(point.d + CAMERA_TO_FRONT, 0.0), v=max(float(self.va[0]), 0.0), a=float(self.va[1]),
                    prob=vision.prob)

    def _match(self, points, vision: Lead, path_x: np.ndarray, path_y: np.ndarray) -> RadarPoint | None:
        gate = GATE_M + float(np.interp(vision.x, *GATE_FRAC)) * vision.x
        best, best_err = None, math.inf
        for p in points:
            if not all(math.isfinite(x) for x in (p.d, p.y, p.v_rel)):
                continue
            x = p.d + CAMERA_TO_FRONT
            lateral = p.y - (float(np.interp(x, path_x, path_y)) if len(path_x) >= 2 else 0.0)
            err = abs(x - vision.x)
            if err > gate or abs(lateral) > PATH_HALF_WIDTH:
                continue
            if p.track_id == self.track_id:
                return p  # the lead we follow, still where the model sees it
            if err < best_err:
                best, best_err = p, err
        return best

    def _filter(self, v_meas: float, dt: float) -> None:
        f = np.array([[1.0, dt], [0.0, 1.0]])
        q = JERK_NOISE ** 2 * np.array([[dt ** 3 / 3, dt ** 2 / 2], [dt ** 2 / 2, dt]])
        va, p = f @ self.va, f @ self.p @ f.T + q
        gain = p[:, 0] / (p[0, 0] + SPEED_STD ** 2)  # measuring the speed only: H = [1, 0]
        self.va = va + gain * (v_meas - va[0])
        self.p = p - np.outer(gain, p[0, :])
