"""The lead the planner follows: the model's lead, tracked over frames.

The model sees the lead in one pair of frames 50 ms apart, which places it well (distance) but tells its speed
poorly: at 12 m/s in stop-and-go traffic it put a lead doing 12 m/s at ~19 m/s (sim, models/driving.onnx), so
the planner did not brake when the lead did. How fast the gap closes is in how the distance changes from frame
to frame, as a radar tracker reads it. So a Kalman filter over (gap, lead speed): the gap changes by the lead's
speed minus ours (known: the car measures it), the lead's speed is constant up to white acceleration noise.
It measures the model's distance only; the model's speed just starts a new track (as a measurement, even a weak
one, its bias pulled the estimate: 2.6 of 7 m/s with a 4 m/s std). Tracking the lead's own speed rather than the
relative one keeps our braking out of what the filter must catch up with: with the relative speed the filter's
lag made a follow at a steady 20 m/s swing by ±1.7 m/s (selfdrive/controls/tests/test_closed_loop.py).

A measurement far from where the tracked lead should be is another car (a cut-in, or the lead changing lanes):
the track starts again from it, as it does after the model has seen no lead for a while.
"""

import math
from dataclasses import dataclass

import numpy as np

from common.realtime import DT_MDL
from selfdrive.controls.lib.long_mpc import Lead

ACCEL_NOISE = 3.0          # m/s², how hard the gap's rate may change between frames (a lead braking hard)
DIST_STD = (1.0, 0.08)     # m and fraction of the distance: the model's distance error (test split median ~8%)
NEW_SPEED_STD = 6.0        # m/s, how unsure a new track's relative speed is (it starts from the model's speed)
JUMP_M = (8.0, 0.25)       # m and fraction: a distance this far from the prediction is another car
LOST_S = 0.5               # s without a lead before the track is dropped


@dataclass
class LeadTrack:
    x: float               # m, gap
    v: float               # m/s, the lead's speed
    p: np.ndarray          # 2x2 covariance of (x, v)


class LeadTracker:
    def __init__(self, dt: float = DT_MDL):
        self.dt = dt
        self.track: LeadTrack | None = None
        self.missing = 0           # frames in a row without a lead
        self.restarts = 0

    def reset(self) -> None:
        self.track = None
        self.missing = 0

    def update(self, lead: Lead | None, v_ego: float) -> Lead | None:
        """The lead to follow this frame (None when there is none); `lead` is the model's, already checked."""
        if lead is None or not all(math.isfinite(x) for x in (lead.x, lead.v, v_ego)):
            # no lead to follow; the track coasts for a moment, so a frame or two the model missed does not restart it
            self.missing += 1
            if self.track is not None:
                self._predict(v_ego)
            if self.missing * self.dt >= LOST_S - 1e-9:
                self.track = None
            return None
        self.missing = 0
        if self.track is not None:
            self._predict(v_ego)
            if abs(lead.x - self.track.x) > JUMP_M[0] + JUMP_M[1] * lead.x:
                self.track = None
                self.restarts += 1
        if self.track is None:
            self.track = LeadTrack(lead.x, lead.v, np.diag([_dist_std(lead.x) ** 2, NEW_SPEED_STD ** 2]))
        else:
            self._correct(lead.x)
        t = self.track
        return Lead(x=max(t.x, 0.0), v=max(t.v, 0.0), a=lead.a, prob=lead.prob)

    def _predict(self, v_ego: float) -> None:
        t, dt = self.track, self.dt
        f = np.array([[1.0, dt], [0.0, 1.0]])
        q = ACCEL_NOISE ** 2 * np.array([[dt ** 4 / 4, dt ** 3 / 2], [dt ** 3 / 2, dt ** 2]])
        t.x, t.p = t.x + dt * (t.v - v_ego), f @ t.p @ f.T + q

    def _correct(self, x: float) -> None:
        t = self.track
        gain = t.p[:, 0] / (t.p[0, 0] + _dist_std(x) ** 2)  # measuring the gap only: H = [1, 0]
        innovation = x - t.x
        t.x, t.v = t.x + gain[0] * innovation, t.v + gain[1] * innovation
        t.p = t.p - np.outer(gain, t.p[0, :])


def _dist_std(x: float) -> float:
    return max(DIST_STD[0], DIST_STD[1] * x)
