"""Longitudinal control: the planned acceleration → the acceleration we ask the car for.

States (CarControl.Actuators.LongControlState):
  off       not engaged: command 0, controller reset;
  pid       planned accel as feedforward plus PI on the accel error (a_target − aEgo);
  stopping  the plan wants us stopped: brake smoothly down to the car's hold accel (stopAccel);
  starting  leaving a stop on cars that need a push (CarParams.startingState): startAccel until moving.
The transitions are one table (TRANSITIONS), read top to bottom, first match wins.
"""

import math
from dataclasses import dataclass

import numpy as np

from common.realtime import DT_CTRL
from selfdrive.controls.lib.long_mpc import ACCEL_MAX, ACCEL_MIN
from selfdrive.controls.lib.pid import PIDController

MAX_PLAN_AGE = 0.2  # s; an older plan is read as if it were this old (its start is stale either way)


@dataclass(frozen=True)
class LongParams:
    kp_bp: tuple[float, ...] = (0.0,)
    kp_v: tuple[float, ...] = (0.0,)
    ki_bp: tuple[float, ...] = (0.0,)
    ki_v: tuple[float, ...] = (0.0,)
    v_ego_stopping: float = 0.5       # m/s
    v_ego_starting: float = 0.5       # m/s
    stop_accel: float = -2.0          # m/s², what holds the car at a stop
    stopping_decel_rate: float = 0.8  # m/s³, how fast the command ramps down to stop_accel
    start_accel: float = 0.0          # m/s²
    starting_state: bool = False

    @staticmethod
    def from_car_params(CP) -> "LongParams":
        lt = CP.longitudinalTuning

        def table(bp, v, default):
            bp, v = tuple(float(x) for x in bp), tuple(float(x) for x in v)
            ok = bp and len(bp) == len(v) and all(math.isfinite(x) for x in (*bp, *v))
            return (bp, v) if ok else default

        def num(x: float, default: float) -> float:
            return float(x) if math.isfinite(x) else default

        d = LongParams()
        kp = table(lt.kpBP, lt.kpV, (d.kp_bp, d.kp_v))
        ki = table(lt.kiBP, lt.kiV, (d.ki_bp, d.ki_v))
        return LongParams(kp[0], kp[1], ki[0], ki[1],
                          num(CP.vEgoStopping, d.v_ego_stopping) or d.v_ego_stopping,
                          num(CP.vEgoStarting, d.v_ego_starting) or d.v_ego_starting,
                          num(CP.stopAccel, d.stop_accel), abs(num(CP.stoppingDecelRate, d.stopping_decel_rate)),
                          num(CP.startAccel, d.start_accel), bool(CP.startingState))


@dataclass(frozen=True)
class LongInputs:
    active: bool
    v_ego: float
    a_ego: float
    a_target: float
    should_stop: bool
    standstill: bool = False
    brake_pressed: bool = False
    cruise_standstill: bool = False   # the car's cruise holds at a stop and waits for a resume


def _stop(i: LongInputs, p: LongParams) -> bool:
    return i.should_stop


def _start(i: LongInputs, p: LongParams) -> bool:
    return not i.should_stop and not i.cruise_standstill and not i.brake_pressed


def _start_with_push(i: LongInputs, p: LongParams) -> bool:
    return p.starting_state and _start(i, p)


def _start_from_standstill(i: LongInputs, p: LongParams) -> bool:
    return i.standstill and _start_with_push(i, p)


def _moving(i: LongInputs, p: LongParams) -> bool:
    return i.v_ego > p.v_ego_starting


def _always(i: LongInputs, p: LongParams) -> bool:
    return True


# (from state, condition, to state): the first row whose state and condition match wins; none: stay.
# Not engaged is always "off" (checked before the table).
TRANSITIONS = (
    ("off", _stop, "stopping"),
    ("off", _start_from_standstill, "starting"),
    ("off", _always, "pid"),
    ("pid", _stop, "stopping"),
    ("stopping", _start_with_push, "starting"),
    ("stopping", _start, "pid"),
    ("starting", _stop, "stopping"),
    ("starting", _moving, "pid"),
)


def next_state(state: str, i: LongInputs, p: LongParams) -> str:
    if not i.active:
        return "off"
    for frm, cond, to in TRANSITIONS:
        if frm == state and cond(i, p):
            return to
    return state


class LongControl:
    def __init__(self, params: LongParams, dt: float = DT_CTRL):
        self.params = params
        self.dt = dt
        self.pid = PIDController((params.kp_bp, params.kp_v), (params.ki_bp, params.ki_v),
                                 pos_limit=ACCEL_MAX, neg_limit=ACCEL_MIN, rate=1.0 / dt)
        self.state = "off"
        self.last_output = 0.0

    def reset(self) -> None:
        self.pid.reset()

    def update(self, i: LongInputs, accel_min: float = ACCEL_MIN, accel_max: float = ACCEL_MAX) -> float:
        p = self.params
        self.state = next_state(self.state, i, p)
        self.pid.neg_limit, self.pid.pos_limit = accel_min, accel_max
        if self.state == "off":
            self.reset()
            out = 0.0
        elif self.state == "stopping":
            self.reset()
            # no more throttle, then ramp the brake down to the hold accel (never back up from a harder brake)
            out = min(self.last_output, 0.0)
            if out > p.stop_accel:
                out = max(out - p.stopping_decel_rate * self.dt, p.stop_accel)
        elif self.state == "starting":
            self.reset()
            out = p.start_accel
        else:
            # the plan already includes the actuator delay: its accel is the feedforward, the PI only
            # trims what the car does differently from what we asked
            out = self.pid.update(i.a_target - i.a_ego, speed=i.v_ego, feedforward=i.a_target,
                                  freeze_integrator=i.brake_pressed)
        self.last_output = min(max(out, accel_min), accel_max)
        return self.last_output


def a_target_from_plan(t, accels, age: float, delay: float) -> float:
    """The planned accel to ask for now: the plan is `age` s old and the car takes `delay` s to respond,
    so what we command now should be what the plan wants at age + delay."""
    return float(np.interp(min(max(age, 0.0), MAX_PLAN_AGE) + delay, t, accels))
