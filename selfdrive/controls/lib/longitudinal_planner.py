"""From the model's view of the road (model_data.ModelData) to a longitudinal plan: lead (tracked), curve speed limits,
set speed → MPC → plan.

Everything here is plain numbers in, numbers out (no messaging), so plannerd, the closed-loop tests and
the benchmark run the same code. Non-finite inputs are treated as missing, never passed to the solver.
"""

from dataclasses import dataclass

import numpy as np

from selfdrive.controls.lib.drive_helpers import finite_or
from selfdrive.controls.lib.lead_tracker import LeadTracker
from selfdrive.controls.lib.long_mpc import T_FOLLOW, T_IDXS, Lead, LongitudinalMpc, MpcSolution, fcw_needed
from selfdrive.controls.lib.model_data import ModelData
from selfdrive.controls.lib.radar_lead import RadarLead, RadarPoint, RadarView

FCW_LEAD_PROB = 0.9        # a warning needs a surer lead than following does
FCW_MIN_SPEED = 5.0        # m/s: below this the driver is creeping, a warning only annoys
FCW_DEBOUNCE = 3           # consecutive plans that must agree before the warning (0.15 s at 20 Hz)
FCW_HOLD = 40              # plans the warning stays up once raised (2 s), so the driver sees it
STEER_AUTHORITY_MARGIN = 0.75  # of the car's lateral acceleration at full steering torque, at most, in curves
A_LAT_CURVE = 1.5          # m/s², lateral accel we slow down to in curves: the RAV4 turns 2.09 at full steering torque,
                           # and at 2.0 a curve tighter than the model saw coming saturated the torque (sim, curvy)
UNLEARNT_AUTHORITY = 0.5   # of the steering carParams claims, planned with before torqued has learnt the car: real cars
                           # answer 0.5-2x their parameters, and a corner shows up ~2 s ahead at speed (the model's
                           # far field), too late to brake a car that turns half as much down to its speed
V_CRUISE_MAX = 45.0        # m/s, highest set speed we plan for
MIN_CURVATURE = 1e-5       # 1/m, below this a road is straight for speed purposes


def parse_radar(lt, t: float) -> RadarView:
    """RadarView from a liveTracks reader (opendbc's RadarData) measured at t (s)."""
    return RadarView(t, tuple(RadarPoint(p.trackId, p.dRel, p.yRel, p.vRel) for p in lt.points))


def curve_lat_accel(lat_accel_factor: float, trust: float = 1.0, fit: float | None = None) -> float:
    """m/s² to slow down to in curves for a car whose steering turns `lat_accel_factor` m/s² at full torque
    (carParams', or torqued's learnt one): A_LAT_CURVE, less where the car cannot steer that much with a margin
    (STEER_AUTHORITY_MARGIN). A car whose steering answers half what carParams says ran wide in a highway curve
    of 1.14 m/s² at full torque (sim, --steer-gain 0.5): it turns 1.07.
    The factor counts for UNLEARNT_AUTHORITY of itself while nothing of this car is learnt, more as `trust` (0..1:
    torqued's confidence, 1 for a stored estimate) grows; the points' own `fit` counts at once where it says the
    car steers less: the weak side is the one that runs wide."""
    t = min(max(finite_or(trust, 0.0), 0.0), 1.0)
    f = max(finite_or(lat_accel_factor, 0.0), 0.0) * (UNLEARNT_AUTHORITY + (1.0 - UNLEARNT_AUTHORITY) * t)
    weaker = finite_or(fit, 0.0)  # None (no fit) reads as 0: none
    f = weaker if 0.0 < weaker < f else f
    return min(A_LAT_CURVE, STEER_AUTHORITY_MARGIN * f) if f > 0 else A_LAT_CURVE


def curve_speed_limits(model: ModelData, v_ego: float, a_lat: float = A_LAT_CURVE) -> np.ndarray | None:
    """Speed limit at each MPC knot from the path's curvature (`a_lat` in curves), or None when the path is unusable.
    Knot k looks at the path where we would be at today's speed: if we slow down we get there later,
    so the limit is applied early rather than late."""
    geo = model.geometry
    if geo is None:
        return None
    s, _, kappa = geo
    k = np.abs(np.interp(max(v_ego, 0.0) * T_IDXS[1:], s, kappa))
    return np.sqrt(a_lat / np.maximum(k, MIN_CURVATURE))


@dataclass
class PlanOutput:
    t: np.ndarray
    speeds: np.ndarray
    accels: np.ndarray
    jerks: np.ndarray
    a_target: float
    should_stop: bool
    lead: Lead | None      # the lead the plan follows
    lead_source: str       # "radar", "vision" or "none"
    fcw: bool
    v_cruise: float
    solve_time: float
    solver_ok: bool

    @property
    def has_lead(self) -> bool:
        return self.lead is not None


class LongitudinalPlanner:
    def __init__(self, long_delay: float = 0.15, v_ego_stopping: float = 0.5):
        self.long_delay = max(finite_or(long_delay, 0.15), 0.0)
        self.v_ego_stopping = finite_or(v_ego_stopping, 0.5)
        self.mpcs: dict[str, LongitudinalMpc] = {}
        self.prev: MpcSolution | None = None
        self.crash_cnt = 0
        self.fcw_hold = 0
        self.leads = LeadTracker()
        self.radar_lead = RadarLead()

    def mpc(self, personality: str) -> LongitudinalMpc:
        # the time gap sits in the constraint matrix: one QP per personality, built on first use
        if personality not in T_FOLLOW:
            personality = "standard"
        if personality not in self.mpcs:
            self.mpcs[personality] = LongitudinalMpc(T_FOLLOW[personality])
        return self.mpcs[personality]

    def update(self, v_ego: float, a_ego: float, v_cruise: float, model: ModelData, long_active: bool,
               personality: str = "standard", radar: RadarView | None = None, now: float = 0.0,
               a_lat_curve: float = A_LAT_CURVE) -> PlanOutput:
        """One plan; `radar` is the newest radar cycle (None without one), `now` the model's time (s), `a_lat_curve`
        what curves are slowed down to (curve_lat_accel)."""
        v_ego = max(finite_or(v_ego, 0.0), 0.0)
        a_ego = finite_or(a_ego, 0.0)
        v_cruise = min(max(finite_or(v_cruise, 0.0), 0.0), V_CRUISE_MAX)
        # engaged: continue from our own planned accel (the measured one is noisy and lags);
        # otherwise start from what the car does, so engaging is seamless
        a0 = float(np.interp(0.05, self.prev.t, self.prev.a)) if long_active and self.prev is not None else a_ego
        vision = self.leads.update(model.lead, v_ego)  # tracked even while the radar leads: ready to take over
        lead = self.radar_lead.update(radar, now, vision, v_ego, model.x, model.y)
        source = "radar" if lead is not None else ("vision" if vision is not None else "none")
        lead = lead if lead is not None else vision
        sol = self.mpc(personality).solve(v_ego, a0, v_cruise, lead, curve_speed_limits(model, v_ego, a_lat_curve))
        self.prev = sol
        a_target = float(np.interp(self.long_delay, sol.t, sol.a))
        v_now = float(np.interp(self.long_delay, sol.t, sol.v))
        v_later = float(np.interp(self.long_delay + 1.0, sol.t, sol.v))
        should_stop = v_now < self.v_ego_stopping and v_later < self.v_ego_stopping
        return PlanOutput(sol.t, sol.v, sol.a, sol.j, a_target, should_stop, lead, source,
                          self._fcw(v_ego, a_ego, lead), v_cruise, sol.solve_time, sol.ok)

    def _fcw(self, v_ego: float, a_ego: float, lead: Lead | None) -> bool:
        danger = (lead is not None and lead.prob > FCW_LEAD_PROB and v_ego > FCW_MIN_SPEED
                  and fcw_needed(v_ego, a_ego, lead))
        self.crash_cnt = self.crash_cnt + 1 if danger else 0
        if self.crash_cnt >= FCW_DEBOUNCE:
            self.fcw_hold = FCW_HOLD
        elif self.fcw_hold > 0:
            self.fcw_hold -= 1
        return self.fcw_hold > 0

