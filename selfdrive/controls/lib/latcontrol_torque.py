"""Lateral control for torque-steered cars, in lateral-acceleration space.

A torque-steered car's steady-state lateral acceleration is close to linear in the steering torque:
a_lat ≈ latAccelFactor · torque + latAccelOffset (opendbc measures both per car). So we work in
lateral acceleration (curvature · v²) and convert to torque last:
  - feedforward: the desired lateral acceleration itself;
  - feedback: PI on the lateral-acceleration error (desired − actual), with a low-speed term so that
    curvature errors still count when v² is small;
  - friction: the steering rack's static friction needs a push of about `friction` (m/s²) in the
    direction the steering must move, which is where the desired lateral jerk points (feedforward only).
Saturation: torque pinned at its limit while the error stays large for longer than steerLimitTimer.

Margin. The loop closes twice: here through the steering angle, and through the camera (the car's yaw moves
the lane lines the plan steers by, ~0.1-0.2 s later). Both must hold when the car is not what carParams says.
Measured in the lateral loop model (`python -m tools.sim.lib.steer_loop`: the sim's car through opendbc's Toyota
torque limits, lane lines seen late at 20 Hz with the model's jitter): KP 1.0 with friction driven by the error's
sign as well (a relay: +50% gain for small errors) chattered, and 0.1 s more actuator delay doubled it. KP 0.3 with
friction from the plan's jerk alone holds +0.1 s at 15-32 m/s; the integrator (KI 0.4) brings a car with half the
torque carParams says back to the lane centre. The rest of the chatter was the model's jitter passed on by the plan
(drive_helpers.PLAN_SMOOTH_S). A car with a different torque response still gets the wrong feedforward until
torqued has learnt its factor (`update_params`).
"""

import math
from dataclasses import dataclass, replace

from common.realtime import DT_CTRL
from selfdrive.controls.lib.pid import PIDController, interp
from selfdrive.locationd.torque_estimator import SteerResponse, within_bounds

KP = 0.3                      # (m/s²) of command per (m/s²) of error (see the module doc for why this low)
KI = 0.4                      # per second
STEER_MAX = 1.0               # normalised torque limit
FRICTION_THRESHOLD = 0.3      # m/s², error at which friction compensation is fully on
FRICTION_JERK_GAIN = 0.1      # s, weight of the desired lateral jerk in the friction direction
LOW_SPEED_BP = [0.0, 5.0, 15.0, 30.0]    # m/s
LOW_SPEED_V = [16.0, 12.0, 6.0, 2.0]     # m²/s², curvature error weight added to v²
MIN_INTEGRATE_SPEED = 5.0     # m/s, below this the integrator holds (parking lot steering)
SAT_ERROR = 0.5               # m/s², a saturated output with less error than this is not a problem


@dataclass
class LatOutput:
    torque: float = 0.0
    p: float = 0.0
    i: float = 0.0
    f: float = 0.0
    error: float = 0.0               # m/s², lateral accel error including the low-speed term
    desired_lateral_accel: float = 0.0
    actual_lateral_accel: float = 0.0
    saturated: bool = False          # at its limit for longer than steer_limit_timer: the driver is warned
    limited: bool = False            # at its limit now, short of the desired lateral accel by SAT_ERROR or more


@dataclass(frozen=True)
class TorqueParams:
    lat_accel_factor: float          # m/s² per unit torque
    lat_accel_offset: float = 0.0    # m/s² the car pulls with zero torque
    friction: float = 0.0            # m/s²
    steer_limit_timer: float = 1.0   # s

    @staticmethod
    def from_car_params(CP) -> "TorqueParams":
        """ValueError when carParams has no usable torque tuning: controlling with made-up gains is worse."""
        if CP.lateralTuning.which() != "torque":
            raise ValueError(f"carParams.lateralTuning is {CP.lateralTuning.which()!r}, this controller needs 'torque'")
        t = CP.lateralTuning.torque
        factor = float(t.latAccelFactor)
        if not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"carParams.lateralTuning.torque.latAccelFactor must be finite and > 0, got {factor}")
        for name in ("friction", "latAccelOffset"):
            if not math.isfinite(getattr(t, name)):
                raise ValueError(f"carParams.lateralTuning.torque.{name} is not finite")
        timer = float(CP.steerLimitTimer) if math.isfinite(CP.steerLimitTimer) and CP.steerLimitTimer > 0 else 1.0
        return TorqueParams(factor, float(t.latAccelOffset), max(float(t.friction), 0.0), timer)

    def response(self) -> SteerResponse:
        """The steering response these parameters describe (what torqued learns against)."""
        return SteerResponse(self.lat_accel_factor, self.lat_accel_offset, self.friction)

    def learned(self, factor: float, offset: float, friction: float) -> "TorqueParams | None":
        """These parameters with torqued's learnt response, or None when it is not a plausible one for this car
        (the bounds torqued itself fits within: never steer on a number that slipped past them)."""
        r = SteerResponse(float(factor), float(offset), float(friction))
        if within_bounds(r, self.lat_accel_factor):
            return None
        return replace(self, lat_accel_factor=r.lat_accel_factor, lat_accel_offset=r.lat_accel_offset,
                       friction=r.friction)


class LatControlTorque:
    def __init__(self, params: TorqueParams, dt: float = DT_CTRL):
        self.dt = dt
        self.pid = PIDController(KP, KI, rate=1.0 / dt)
        self.update_params(params)
        self.sat_time = 0.0
        self.prev_desired_lat_accel = 0.0

    def update_params(self, params: TorqueParams) -> None:
        """New torque parameters (learned while driving): the feedforward and the output's limits follow, the
        integrator keeps what it has learnt (in lateral acceleration, which does not depend on them)."""
        self.params = params
        self.pid.neg_limit = params.lat_accel_offset - params.lat_accel_factor * STEER_MAX
        self.pid.pos_limit = params.lat_accel_offset + params.lat_accel_factor * STEER_MAX

    def reset(self) -> None:
        self.pid.reset()
        self.sat_time = 0.0

    def torque_from_lat_accel(self, lat_accel: float) -> float:
        return (lat_accel - self.params.lat_accel_offset) / self.params.lat_accel_factor

    def update(self, active: bool, v_ego: float, actual_curvature: float, desired_curvature: float,
               steering_pressed: bool = False) -> LatOutput:
        v2 = v_ego * v_ego
        desired_la, actual_la = desired_curvature * v2, actual_curvature * v2
        jerk = (desired_la - self.prev_desired_lat_accel) / self.dt
        self.prev_desired_lat_accel = desired_la
        if not active:
            self.reset()
            return LatOutput(desired_lateral_accel=desired_la, actual_lateral_accel=actual_la)

        low_speed = interp(v_ego, LOW_SPEED_BP, LOW_SPEED_V)
        error = (desired_la + low_speed * desired_curvature) - (actual_la + low_speed * actual_curvature)
        friction = self.params.friction * min(max(FRICTION_JERK_GAIN * jerk / FRICTION_THRESHOLD, -1.0), 1.0)
        freeze = steering_pressed or v_ego < MIN_INTEGRATE_SPEED
        out = self.pid.update(error, speed=v_ego, feedforward=desired_la + friction, freeze_integrator=freeze)
        torque = min(max(self.torque_from_lat_accel(out), -STEER_MAX), STEER_MAX)

        limited = self.pid.saturated and abs(error) > SAT_ERROR and not steering_pressed
        self.sat_time = self.sat_time + self.dt if limited else max(self.sat_time - self.dt, 0.0)
        return LatOutput(torque, self.pid.p, self.pid.i, self.pid.f, error, desired_la, actual_la,
                         self.sat_time > self.params.steer_limit_timer, limited)
