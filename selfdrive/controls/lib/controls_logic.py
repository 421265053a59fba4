"""controlsd's logic without sockets: carState + selfdriveState + the longitudinal plan + the model's newest frame in,
carControl + controlsState out.

Lateral: each new model frame sets the curvature to steer for (lateral_planner.py, with this cycle's curvature of
the car); every cycle the commanded curvature moves towards it within the lateral jerk and acceleration limits
(clip_curvature at DT_CTRL): the one rate limit between the model and the torque controller.

Engagement comes from selfdrived, one cycle old; the driver's pedals act in this very cycle (brake
releases everything, gas releases longitudinal), so the car never waits on a message hop to let go.
Non-finite numbers: a carState with a non-finite or absurd speed/steering value releases the actuators for that
cycle (controllers reset, so no NaN can settle in an integrator); plan values that are not finite are
replaced; and as a last guard every float written to carControl is checked, zeroed if non-finite, and
logged (1st, 2nd, 4th... occurrence).
"""

import math
from dataclasses import dataclass, field

import numpy as np

from cereal import ACTUATOR_FLOATS
from common.realtime import DT_CTRL
from common.swaglog import cloudlog, log_due
from selfdrive.controls.lib.drive_helpers import (
    MAX_CURVATURE,
    clip_curvature,
    curvature_from_steering,
    finite_or,
    slip_factor,
    steering_from_curvature,
)
from selfdrive.controls.lib.latcontrol_torque import LatControlTorque, LatOutput, TorqueParams
from selfdrive.controls.lib.lateral_planner import LateralPlanner
from selfdrive.controls.lib.long_mpc import T_IDXS
from selfdrive.controls.lib.longcontrol import LongControl, LongInputs, LongParams, a_target_from_plan
from selfdrive.controls.lib.model_data import ModelData

# While the steering is at its limit and short of the curve, slow down at least this much: the car turns the
# curvature it can at a lower speed. Suburban's 50 m corners, entered at 10-11 m/s where the model read them at 0.73x
# their curvature, asked 2.2 m/s² of a car that turns 1.7 at full torque; the car ran wide and the driver took over
# 0.8-1.8 s after the torque had saturated (issue 22).
STEER_LIMIT_DECEL = 1.5     # m/s²
CANCEL_AFTER = 5            # cycles selfdrived has seen the car cruise and not engaged us before we cancel the cruise
CANCEL_UNANSWERED = 50      # cycles the car cruises without us while selfdrived has not answered (stalled, gone)
LEAD_BARS = {"aggressive": 1, "standard": 2, "relaxed": 3}
F32_MAX = 3.4e38            # a larger float64 turns into inf in a Float32 field


@dataclass(frozen=True)
class PlanView:
    """The parts of longitudinalPlan controlsd uses; `age` is how old the plan is now (s)."""
    t: np.ndarray = field(default_factory=lambda: T_IDXS.copy())
    accels: np.ndarray = field(default_factory=lambda: np.zeros(len(T_IDXS)))
    speeds: np.ndarray = field(default_factory=lambda: np.zeros(len(T_IDXS)))
    should_stop: bool = False
    fcw: bool = False
    has_lead: bool = False
    age: float = 0.0

    @staticmethod
    def from_msg(plan, age: float) -> "PlanView":
        t, a, v = (np.array(list(x), dtype=np.float64) for x in (plan.t, plan.accels, plan.speeds))
        n = len(t)
        ok = n >= 2 and len(a) == n and len(v) == n and np.isfinite(t).all() and np.all(np.diff(t) > 0)
        if not ok:
            # unusable arrays: hold still (an engaged car slows gently through longcontrol's PID on 0 accel)
            return PlanView(should_stop=bool(plan.shouldStop), age=age)
        a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
        v = np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)
        return PlanView(t=t, accels=a, speeds=v, should_stop=bool(plan.shouldStop), fcw=bool(plan.fcw),
                        has_lead=bool(plan.hasLead), age=age)


@dataclass(frozen=True)
class SelfdriveView:
    enabled: bool = False
    active: bool = False
    alert_sound: str = "none"     # the alert's CarControl.HUDControl.AudibleAlert, from selfdriveState
    alert_visual: str = "none"    # ... and its VisualAlert
    personality: str = "standard"
    car_state_mono: int = 0       # logMonoTime of the carState selfdrived decided on


class ControlsLogic:
    def __init__(self, CP):
        self.CP = CP
        if not (CP.steerRatio > 0 and CP.wheelbase > 0):
            raise ValueError(f"carParams needs steerRatio and wheelbase > 0, got {CP.steerRatio}, {CP.wheelbase}")
        self.lat: LatControlTorque | None = None
        self.car_torque: TorqueParams | None = None  # what carParams says; torqued's estimate replaces it in self.lat
        self.torque_source = "carParams"
        if CP.dashcamOnly:
            cloudlog.info("dashcam mode (car not recognised): no lateral controller")
        elif CP.steerControlType == "torque":
            try:
                self.car_torque = TorqueParams.from_car_params(CP)
                self.lat = LatControlTorque(self.car_torque)
            except ValueError as e:
                cloudlog.error(f"lateral control unavailable: {e}")  # lateral stays off; longitudinal still works
        self.long = LongControl(LongParams.from_car_params(CP))
        self.long_delay = max(finite_or(CP.longitudinalActuatorDelay, 0.15), 0.0)
        self.slip = slip_factor(CP)  # the curvature the car really drives at speed, not the wheels' (see update)
        self.lat_plan = LateralPlanner(CP.steerActuatorDelay)
        self.desired_curvature = 0.0  # what we command: towards lat_plan's target, rate limited
        self.cruise_without_us = 0
        self.cruise_refused = 0
        self.cruise_on_since: int | None = None  # logMonoTime of the first carState of the cruise without us
        self.nonfinite = 0
        self.last_lat = LatOutput()

    def update_torque(self, lt) -> None:
        """torqued's estimate (a liveTorqueParameters reader) for the torque controller, when it is plausible for
        this car; else carParams' stay (logged once per change of mind)."""
        if self.lat is None or self.car_torque is None:
            return
        p = self.car_torque.learned(lt.latAccelFactor, lt.latAccelOffset, lt.friction)
        source = str(lt.source) if p is not None else "carParams"
        if source != self.torque_source:
            cloudlog.info("torque parameters", extra={"source": source, "latAccelFactor": float(lt.latAccelFactor),
                                                      "used": p is not None})
            self.torque_source = source
        self.lat.update_params(p if p is not None else self.car_torque)

    def update(self, CS, sd: SelfdriveView, plan: PlanView, cc, cst, cs_mono: int = 0,
               model: ModelData | None = None) -> None:
        """Fills the carControl builder `cc` and controlsState builder `cst` for this cycle (cs_mono: CS's
        logMonoTime; `model`: the model frame that came since the last cycle, None when none did)."""
        CP = self.CP
        v_ego, a_ego = float(CS.vEgo), float(CS.aEgo)
        angle = float(CS.steeringAngleDeg) - float(CS.steeringAngleOffsetDeg)
        # NaN/inf and physically absurd values (a broken parser, not a car) release the actuators this cycle
        limits = ((v_ego, 150.0), (a_ego, 50.0), (angle, 3600.0))
        inputs_ok = all(math.isfinite(x) and abs(x) < lim for x, lim in limits)
        if not inputs_ok:
            self._count_nonfinite(["carState"])
            v_ego, a_ego, angle = 0.0, 0.0, 0.0
        enabled = sd.enabled and inputs_ok and not CS.brakePressed
        active = sd.active and enabled
        lat_active = (active and self.lat is not None and not CS.steerFaultTemporary and not CS.steerFaultPermanent
                      and v_ego >= CP.minSteerSpeed)
        long_active = active and CP.openpilotLongitudinalControl and not CS.gasPressed

        # what the car turns at this speed: at highway speed an understeering car's path bends ~40% less than a
        # kinematic bicycle's with the same steering angle, and closing the loop on that would leave it running
        # wide in every curve
        actual_k = curvature_from_steering(angle, CP.steerRatio, CP.wheelbase, v_ego, self.slip)
        # planned on every frame, engaged or not: the low-pass is settled on the road when we engage
        if model is not None:
            self.lat_plan.update(model, v_ego, actual_k)
        if lat_active:
            self.desired_curvature, _ = clip_curvature(v_ego, self.desired_curvature, self.lat_plan.curvature, DT_CTRL)
        else:
            self.desired_curvature = min(max(actual_k, -MAX_CURVATURE), MAX_CURVATURE)  # engage from where we are
        lat = self.lat.update(lat_active, v_ego, actual_k, self.desired_curvature, bool(CS.steeringPressed)) \
            if self.lat is not None else LatOutput()
        self.last_lat = lat

        a_target = finite_or(a_target_from_plan(plan.t, plan.accels, plan.age, self.long_delay), 0.0)
        if lat_active and lat.limited:
            a_target = min(a_target, -STEER_LIMIT_DECEL)
        accel = self.long.update(LongInputs(long_active, v_ego, a_ego, a_target, plan.should_stop,
                                            bool(CS.standstill), bool(CS.brakePressed),
                                            bool(CS.cruiseState.standstill)))
        v_target = float(np.interp(plan.age + self.long_delay, plan.t, plan.speeds))

        cc.enabled, cc.latActive, cc.longActive = enabled, lat_active, long_active
        cc.currentCurvature = actual_k
        act = cc.actuators
        act.torque = lat.torque if lat_active else 0.0
        act.curvature = self.desired_curvature
        act.steeringAngleDeg = steering_from_curvature(self.desired_curvature, CP.steerRatio, CP.wheelbase, v_ego,
                                                       self.slip) \
            + finite_or(CS.steeringAngleOffsetDeg, 0.0)
        act.accel = accel if long_active else 0.0
        act.longControlState = self.long.state
        act.speed = v_target if long_active else 0.0
        self._cancel_cruise_without_us(CS, cc, sd, enabled, cs_mono)
        self._hud(CS, cc, sd, plan, enabled)
        self._guard(cc)
        self._fill_state(cst, lat, actual_k, a_target)

    def _cancel_cruise_without_us(self, CS, cc, sd: SelfdriveView, enabled: bool, cs_mono: int) -> None:
        """The car's own cruise must not keep driving on its own when we are not engaged. A cruise that just came
        on is what selfdrived engages on, one carState later at the soonest: cancel once selfdrived has seen the
        cruise on and still not engaged us (it refused), not by the clock, which a late selfdrived on a loaded
        machine would lose (it did: the driver's engagement was cancelled before selfdrived got to it).
        A selfdrived that does not answer at all gets CANCEL_UNANSWERED cycles."""
        cruising = bool(CS.cruiseState.enabled)
        if not cruising or sd.enabled:
            self.cruise_on_since, self.cruise_without_us, self.cruise_refused = None, 0, 0
        else:
            if self.cruise_on_since is None:
                self.cruise_on_since = cs_mono
            self.cruise_without_us += 1
            self.cruise_refused += int(sd.car_state_mono >= self.cruise_on_since)
        cc.cruiseControl.cancel = (self.cruise_refused >= CANCEL_AFTER or self.cruise_without_us >= CANCEL_UNANSWERED
                                   or (cruising and not self.CP.pcmCruise and not enabled))

    def _hud(self, CS, cc, sd: SelfdriveView, plan: PlanView, enabled: bool) -> None:
        hud = cc.hudControl
        v_cruise = float(CS.vCruise) if CS.vCruise > 0 else float(CS.cruiseState.speed)
        hud.setSpeed = v_cruise
        hud.speedVisible = hud.lanesVisible = enabled
        hud.leadVisible = plan.has_lead
        hud.leadDistanceBars = LEAD_BARS.get(sd.personality, 2)
        hud.visualAlert = "fcw" if plan.fcw else sd.alert_visual
        hud.audibleAlert = sd.alert_sound

    def _guard(self, cc) -> None:
        act = cc.actuators
        bad = [f for f in ACTUATOR_FLOATS if not math.isfinite(getattr(act, f))]
        for f in bad:
            setattr(act, f, 0.0)
        for obj, f in ((cc.hudControl, "setSpeed"), (cc, "currentCurvature")):
            if not math.isfinite(getattr(obj, f)):
                setattr(obj, f, 0.0)
                bad.append(f)
        if bad:
            self._count_nonfinite(bad)

    def _count_nonfinite(self, fields: list[str]) -> None:
        self.nonfinite += 1
        if log_due(self.nonfinite):
            cloudlog.error("non-finite values zeroed", extra={"fields": fields, "count": self.nonfinite})

    def _fill_state(self, cst, lat: LatOutput, actual_k: float, a_target: float) -> None:
        pid = self.long.pid
        vals = (("curvature", actual_k), ("desiredCurvature", self.desired_curvature), ("lateralError", lat.error),
                ("lateralP", lat.p), ("lateralI", lat.i), ("lateralF", lat.f), ("upAccelCmd", pid.p),
                ("uiAccelCmd", pid.i), ("ufAccelCmd", pid.f), ("aTarget", a_target))
        for name, v in vals:
            setattr(cst, name, v if math.isfinite(v) and abs(v) < F32_MAX else 0.0)
        cst.lateralSaturated = lat.saturated
        cst.longitudinalState = self.long.state
