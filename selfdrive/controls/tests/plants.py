"""Simple vehicle plants for closed-loop tests: what the controllers drive when there is no car.

LongPlant: a point mass whose acceleration follows the command through a dead time and a first-order
lag (engine/brake response), never rolling backwards.
LatPlant: a torque-steered car. Torque → steady-state lateral acceleration (gain and offset, like
opendbc's torque model), reached through a first-order lag, with rack friction: the steering only moves
when the torque's lateral acceleration differs from the current one by more than `friction`. The
path curvature is lateral acceleration / v², and the steering angle follows from the kinematic bicycle.
"""

from collections import deque
from dataclasses import dataclass, field

from selfdrive.controls.lib.drive_helpers import steering_from_curvature


@dataclass
class LongPlant:
    v: float
    x: float = 0.0
    a: float = 0.0
    tau: float = 0.3          # s, first-order lag of the achieved accel
    dead_time: float = 0.1    # s
    dt: float = 0.01
    _queue: deque = field(default_factory=deque)

    def step(self, accel_cmd: float) -> None:
        n = max(1, round(self.dead_time / self.dt))
        if not self._queue:
            self._queue.extend([self.a] * n)
        self._queue.append(accel_cmd)
        cmd = self._queue.popleft()
        self.a += (cmd - self.a) * self.dt / self.tau
        if self.v <= 0.0 and self.a < 0.0:
            self.a = 0.0  # brakes hold a stopped car; they never push it backwards
        v_new = max(self.v + self.a * self.dt, 0.0)
        self.x += (self.v + v_new) / 2 * self.dt
        self.v = v_new


@dataclass
class LeadCar:
    x: float
    v: float
    a: float = 0.0
    dt: float = 0.01

    def step(self) -> None:
        v_new = max(self.v + self.a * self.dt, 0.0)
        self.x += (self.v + v_new) / 2 * self.dt
        self.v = v_new
        if self.v == 0.0:
            self.a = 0.0


@dataclass
class LatPlant:
    v: float
    lat_accel_factor: float = 2.5
    lat_accel_offset: float = 0.0
    friction: float = 0.1     # m/s²
    tau: float = 0.15         # s
    steer_ratio: float = 15.0
    wheelbase: float = 2.7
    dt: float = 0.01
    lat_accel: float = 0.0

    def step(self, torque: float) -> None:
        target = self.lat_accel_factor * torque + self.lat_accel_offset
        diff = target - self.lat_accel
        push = max(abs(diff) - self.friction, 0.0) * (1 if diff > 0 else -1)
        self.lat_accel += push * self.dt / self.tau

    @property
    def curvature(self) -> float:
        return self.lat_accel / max(self.v, 0.1) ** 2

    @property
    def steering_angle_deg(self) -> float:
        return steering_from_curvature(self.curvature, self.steer_ratio, self.wheelbase)
