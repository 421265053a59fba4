"""A PI(D) controller with speed-scheduled gains, feedforward and anti-windup, shared by lateral and
longitudinal control."""

import math
from collections.abc import Sequence

import numpy as np


def interp(x: float, xp: Sequence[float], fp: Sequence[float]) -> float:
    """np.interp for one scalar, returning a Python float (callers stay in float arithmetic)."""
    return float(np.interp(x, xp, fp))


class PIDController:
    """u = kp*e + ki*∫e + kd*ė + feedforward, clipped to [neg_limit, pos_limit].

    Gains are (breakpoints, values) tables over speed. The integrator stops growing while the output
    is clipped in the error's direction (anti-windup), and while the caller freezes it (e.g. the driver
    overrides), so it never has to unwind a windup that the controller could not act on.
    """

    def __init__(self, kp: tuple[Sequence[float], Sequence[float]] | float,
                 ki: tuple[Sequence[float], Sequence[float]] | float,
                 kd: float = 0.0, pos_limit: float = 1e9, neg_limit: float = -1e9, rate: float = 100.0):
        self._kp = ([0.0], [kp]) if isinstance(kp, int | float) else (list(kp[0]), list(kp[1]))
        self._ki = ([0.0], [ki]) if isinstance(ki, int | float) else (list(ki[0]), list(ki[1]))
        for name, (bp, v) in (("kp", self._kp), ("ki", self._ki)):
            if not bp or len(bp) != len(v) or not all(math.isfinite(x) for x in (*bp, *v)):
                raise ValueError(f"PID {name} table must be two equally long, non-empty, finite lists: {bp} {v}")
        self.kd = kd
        self.pos_limit = pos_limit
        self.neg_limit = neg_limit
        self.dt = 1.0 / rate
        self.reset()

    def reset(self) -> None:
        self.p = self.i = self.d = self.f = 0.0
        self.control = 0.0
        self.saturated = False
        self._last_error = 0.0

    def gains(self, speed: float) -> tuple[float, float]:
        return interp(speed, *self._kp), interp(speed, *self._ki)

    def update(self, error: float, speed: float = 0.0, feedforward: float = 0.0,
               freeze_integrator: bool = False) -> float:
        kp, ki = self.gains(speed)
        self.p = kp * error
        self.f = feedforward
        self.d = self.kd * (error - self._last_error) / self.dt
        self._last_error = error
        if not freeze_integrator:
            i = self.i + ki * error * self.dt
            unclipped = self.p + i + self.d + self.f
            # integrate only when that does not push further into a limit we are already at
            pushing_up = unclipped > self.pos_limit and error > 0
            pushing_down = unclipped < self.neg_limit and error < 0
            if not (pushing_up or pushing_down):
                self.i = min(max(i, self.neg_limit), self.pos_limit)
        raw = self.p + self.i + self.d + self.f
        self.control = min(max(raw, self.neg_limit), self.pos_limit)
        self.saturated = raw != self.control
        return self.control
