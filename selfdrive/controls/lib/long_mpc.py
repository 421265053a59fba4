"""Longitudinal MPC: the ego's speed over the next 10 s, solved as one convex QP with OSQP.

Model: states position s, speed v, accel a; control jerk j, held constant over each step, so the
discrete dynamics are exact. The horizon has fine steps first (where the plan is executed) and coarse
ones later (where it only has to stay feasible). States are eliminated ("condensed" QP): every state
is an affine function of the initial state and the jerks, x_k = Φ_k x0 + G_k j. Only the jerks and a few
slack variables are optimised, and the matrices depend only on the time grid and the time gap, so they
are built once; each solve updates only the vectors (cost's linear term, constraint bounds) and warm
starts from the previous solution.

Cost (each term weighted by its step length, so it is an integral): speed error to the reference (the
set speed, lowered for curves), accel, jerk; plus heavy penalties on slacks.
Hard constraints: jerk and accel within comfort limits. Soft constraints (a slack each, so the QP
is always feasible and we still get the best available plan when the situation is already bad):
  - following: s_k + T·v_k ≤ s_lead,k − STOP_DISTANCE, the lead predicted over the horizon;
  - speed: 0 ≤ v_k ≤ v_max,k (v_max from curves).
"""

import math
import time
from dataclasses import dataclass

import numpy as np
import osqp
import scipy.sparse as sp

DTS = np.array([0.2] * 10 + [0.5] * 16)
T_IDXS = np.concatenate(([0.0], np.cumsum(DTS)))  # the knots: 0 .. 10 s
N = len(DTS)

ACCEL_MIN = -3.5          # m/s², hardest braking the plan may use
ACCEL_MAX = 2.0           # m/s²
JERK_MIN = -5.0           # m/s³
JERK_MAX = 5.0
A_CRUISE_MIN = -1.2       # m/s², how hard a lower set speed alone slows us
A_CRUISE_MAX_BP = [0.0, 10.0, 25.0, 40.0]  # m/s
A_CRUISE_MAX_V = [1.6, 1.2, 0.8, 0.6]       # m/s², acceleration allowed toward the set speed
STOP_DISTANCE = 6.0       # m, gap kept to a stopped lead
A_GAP_RECOVERY = 1.0      # m/s², braking that restores the time gap after a cut-in (see _gap_allowance)
GAP_RECOVERY_TIME = 8.0   # s
LEAD_ACCEL_TAU = 1.5      # s, a lead's positive accel is assumed to fade with this time constant
T_FOLLOW = {"aggressive": 1.25, "standard": 1.45, "relaxed": 1.75}  # s, time gap per personality

W_SPEED = 1.0
W_ACCEL = 2.0
W_JERK = 4.0
W_FOLLOW = 3.0           # per m ahead per s of horizon, where the lead limits us
W_SLACK_LIN = 3e2
W_SLACK_QUAD = 1.0

INF = 1e30                # OSQP's infinity

OK_STATUSES = ("solved", "solved inaccurate", "maximum iterations reached")
ADAPTIVE_RHO_INTERVAL = 25    # ADMM iterations between rho updates (fixed: see LongMpc.__init__)


@dataclass(frozen=True)
class Lead:
    x: float   # m, gap ahead
    v: float   # m/s, absolute speed
    a: float   # m/s²
    prob: float = 1.0


@dataclass
class MpcSolution:
    t: np.ndarray          # s, the knots (N+1)
    s: np.ndarray          # m
    v: np.ndarray          # m/s
    a: np.ndarray          # m/s²
    j: np.ndarray          # m/s³ (N+1: the last step's jerk repeated)
    status: str
    solve_time: float      # s, OSQP's own solve time plus our vector updates
    slack: float           # largest slack used: > 0 means a soft constraint could not hold
    ok: bool               # the solver returned a usable solution (else this is a fallback plan)


def predict_lead(lead: Lead, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gap position, speed) of the lead at times `t`: braking held until it stops (safe side); a positive
    accel fading out, since nobody accelerates for 10 s."""
    v0, a = max(lead.v, 0.0), lead.a
    if a <= 0.0:
        t_stop = v0 / -a if a < 0 else math.inf
        tc = np.minimum(t, t_stop)
        s = v0 * tc + 0.5 * a * tc * tc
        v = np.maximum(v0 + a * tc, 0.0)
    else:
        decay = 1.0 - np.exp(-t / LEAD_ACCEL_TAU)
        v = v0 + a * LEAD_ACCEL_TAU * decay
        s = v0 * t + a * LEAD_ACCEL_TAU * (t - LEAD_ACCEL_TAU * decay)
    return lead.x + s, v


def a_cruise_max(v_ego: float) -> float:
    return float(np.interp(v_ego, A_CRUISE_MAX_BP, A_CRUISE_MAX_V))


def _prediction_matrices(dts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Φ (N,3,3) and G (N,3,N) with x_{k+1} = Φ_k x0 + G_k j for the constant-jerk triple integrator."""
    n = len(dts)
    phi, g = np.zeros((n, 3, 3)), np.zeros((n, 3, n))
    pk, gk = np.eye(3), np.zeros((3, n))
    for k, dt in enumerate(dts):
        a, b = _step(dt)
        pk, gk = a @ pk, a @ gk
        gk[:, k] += b
        phi[k], g[k] = pk, gk
    return phi, g


def _step(dt: float) -> tuple[np.ndarray, np.ndarray]:
    """x_{k+1} = A x_k + B j_k, exact for jerk held over dt."""
    return np.array([[1.0, dt, dt * dt / 2], [0.0, 1.0, dt], [0.0, 0.0, 1.0]]), np.array([dt ** 3 / 6, dt * dt / 2, dt])


class LongitudinalMpc:
    """One QP per time gap (the time gap is in the constraint matrix).

    Variables z = [x_1..x_N (s, v, a each), j_0..j_{N-1}, e_lead (N), e_v (N)]. The states stay in the
    QP with the dynamics as equality constraints: every matrix is sparse and banded and the cost is
    diagonal, which OSQP converges on in a few dozen iterations (eliminating the states instead gives
    dense, badly scaled matrices that need hundreds).
    """

    def __init__(self, t_follow: float = T_FOLLOW["standard"]):
        self.t_follow = t_follow
        phi, g = _prediction_matrices(DTS)
        self.phi_s, self.phi_v, self.phi_a = phi[:, 0, :], phi[:, 1, :], phi[:, 2, :]
        self.g_s, self.g_v, self.g_a = g[:, 0, :], g[:, 1, :], g[:, 2, :]
        nx, n = 3 * N, 6 * N
        self.ix_s, self.ix_v, self.ix_a = np.arange(0, nx, 3), np.arange(1, nx, 3), np.arange(2, nx, 3)
        self.ix_j = np.arange(nx, nx + N)
        p_diag = np.zeros(n)
        p_diag[self.ix_v] = 2 * W_SPEED * DTS
        p_diag[self.ix_a] = 2 * W_ACCEL * DTS
        p_diag[self.ix_j] = 2 * W_JERK * DTS
        p_diag[nx + N:] = 2 * W_SLACK_QUAD
        rows = []
        # dynamics: x_{k+1} − A_k x_k − B_k j_k = 0 (for k = 0 the A_0 x0 part moves to the bounds)
        dyn = sp.lil_matrix((nx, n))
        for k, dt in enumerate(DTS):
            a, b = _step(dt)
            dyn[3 * k:3 * k + 3, 3 * k:3 * k + 3] = np.eye(3)
            if k > 0:
                dyn[3 * k:3 * k + 3, 3 * (k - 1):3 * k] = -a
            dyn[3 * k:3 * k + 3, nx + k] = -b[:, None]
        rows.append(dyn)
        sel = sp.lil_matrix((5 * N, n))
        for k in range(N):
            sel[k, self.ix_s[k]], sel[k, self.ix_v[k]], sel[k, 4 * N + k] = 1.0, t_follow, -1.0  # following
            sel[N + k, self.ix_v[k]], sel[N + k, 5 * N + k] = 1.0, -1.0                         # v ≤ v_max
            sel[2 * N + k, self.ix_v[k]], sel[2 * N + k, 5 * N + k] = 1.0, 1.0                  # v ≥ 0
            sel[3 * N + k, self.ix_a[k]] = 1.0                                                  # accel
            sel[4 * N + k, self.ix_j[k]] = 1.0                                                  # jerk
        rows.append(sel)
        rows.append(sp.hstack([sp.csc_matrix((2 * N, 4 * N)), sp.eye(2 * N)]))              # slacks ≥ 0
        a_mat = sp.vstack(rows, format="csc")
        self.q = np.concatenate([np.zeros(4 * N), np.full(2 * N, W_SLACK_LIN)])
        self.l = np.concatenate([np.zeros(nx), np.full(2 * N, -INF), np.zeros(2 * N), np.full(N, JERK_MIN),
                                 np.zeros(2 * N)])
        self.u = np.concatenate([np.zeros(nx), np.full(4 * N, INF), np.full(N, JERK_MAX), np.full(2 * N, INF)])
        self.r_lead, self.r_vmax, self.r_vmin, self.r_acc = (slice(nx + i * N, nx + (i + 1) * N) for i in range(4))
        self.solver = osqp.OSQP()
        self.solver.setup(sp.diags(p_diag, format="csc"), self.q.copy(), a_mat, self.l.copy(), self.u.copy(),
                          verbose=False, polishing=False, warm_starting=True, eps_abs=3e-4, eps_rel=3e-4,
                          max_iter=400, adaptive_rho=True, check_termination=5,
                          # OSQP's default interval (0) is chosen from how long setup took: wall-clock time in
                          # the solution, so a replay of the same inputs could plan differently
                          adaptive_rho_interval=ADAPTIVE_RHO_INTERVAL)
        self.a0_step = _step(DTS[0])[0]

    def solve(self, v0: float, a0: float, v_cruise: float, lead: Lead | None = None,
              v_max: np.ndarray | None = None, a_max: float | None = None) -> MpcSolution:
        """Plans from speed v0 and accel a0 (clipped into the limits) toward `v_cruise`, behind `lead`,
        under the per-knot speed limits `v_max` (N values at T_IDXS[1:]). Inputs must be finite."""
        start = time.monotonic()
        a_hi = min(ACCEL_MAX, a_cruise_max(v0) if a_max is None else a_max)
        a0 = min(max(a0, ACCEL_MIN), a_hi)
        x0 = np.array([0.0, v0, a0])
        t = T_IDXS[1:]
        v_lim = np.full(N, INF) if v_max is None else np.asarray(v_max, dtype=np.float64)
        # reference: the set speed, reached no harder than A_CRUISE_MIN when it is below us, and never above v_max
        v_ref = np.minimum(np.maximum(v_cruise, v0 + A_CRUISE_MIN * t), v_lim) if v_cruise < v0 \
            else np.minimum(v_cruise, v_lim)
        q, lo, u = self.q, self.l, self.u
        q[self.ix_v] = -2 * W_SPEED * DTS * v_ref
        lo[:3] = u[:3] = self.a0_step @ x0
        q[self.ix_s] = 0.0
        if lead is None:
            u[self.r_lead] = INF
        else:
            s_lead, v_lead = predict_lead(lead, t)
            u[self.r_lead] = s_lead - STOP_DISTANCE + self._gap_allowance(v0, lead, s_lead, t)
            # Where the lead, not the set speed, limits us, reward being further ahead (up to the constraint).
            # The speed cost alone would spread the distance left evenly over the horizon (it is convex),
            # which closes a gap ever more slowly; this pull makes us close it, then hold it.
            x_follow = s_lead - STOP_DISTANCE - self.t_follow * v_lead
            x_cruise = np.cumsum(DTS * (np.concatenate(([v0], v_ref[:-1])) + v_ref) / 2)
            q[self.ix_s] = np.where(x_follow < x_cruise, -W_FOLLOW * DTS, 0.0)
        u[self.r_vmax] = v_lim
        lo[self.r_acc] = ACCEL_MIN
        u[self.r_acc] = a_hi
        self.solver.update(q=q, l=lo, u=u)
        res = self.solver.solve(raise_error=False)
        status = str(res.info.status)
        ok = status in OK_STATUSES and res.x is not None and bool(np.isfinite(res.x).all())
        j = np.clip(res.x[self.ix_j], JERK_MIN, JERK_MAX) if ok else self._fallback_jerk(a0, lead is not None)
        slack = float(np.max(res.x[4 * N:])) if ok else 0.0
        return self._trajectory(x0, j, a_hi, status, time.monotonic() - start, max(slack, 0.0), ok)

    def _gap_allowance(self, v0: float, lead: Lead, s_lead: np.ndarray, t: np.ndarray) -> np.ndarray:
        """How much closer than the time gap we may be at each knot after a car cut in closer than the gap.

        Without it the QP would restore the gap at once, with an emergency stop for a car that is merely
        close. The allowance is what a comfortable response (braking at A_GAP_RECOVERY down to the lead's
        speed) would still lack, eased out to nothing over GAP_RECOVERY_TIME. It never exceeds
        T·(our slowest possible speed at that knot), so s + T·v ≤ s_lead − STOP_DISTANCE + allowance still
        keeps us STOP_DISTANCE behind the lead, and a lead that brakes is in its predicted path anyway.
        Only for a gap that is already short now: approaching a lead from afar keeps the full constraint."""
        if self.t_follow * v0 <= lead.x - STOP_DISTANCE:
            return np.zeros_like(t)
        v_floor = min(v0, max(lead.v, 0.0))
        t1 = (v0 - v_floor) / A_GAP_RECOVERY
        tb = np.minimum(t, t1)
        v_ref = v0 - A_GAP_RECOVERY * tb
        s_ref = v0 * tb - 0.5 * A_GAP_RECOVERY * tb * tb + v_floor * (t - tb)
        lacking = np.maximum(s_ref + self.t_follow * v_ref - (s_lead - STOP_DISTANCE), 0.0)
        x = np.minimum(t / GAP_RECOVERY_TIME, 1.0)
        eased = lacking * (1.0 - x * x * (3.0 - 2.0 * x))
        return np.minimum(eased, self.t_follow * np.maximum(v0 + ACCEL_MIN * t, 0.0))

    @staticmethod
    def _fallback_jerk(a0: float, has_lead: bool) -> np.ndarray:
        """No usable solution: ease toward gentle braking with a lead, toward coasting without one."""
        target = -1.0 if has_lead else min(a0, 0.0)
        j, a = np.zeros(N), a0
        for k, dt in enumerate(DTS):
            j[k] = min(max((target - a) / dt, JERK_MIN), JERK_MAX)
            a += j[k] * dt
        return j

    def _trajectory(self, x0: np.ndarray, j: np.ndarray, a_hi: float, status: str, solve_time: float, slack: float,
                    ok: bool) -> MpcSolution:
        """States integrated from the jerks: exactly consistent whatever the solver's equality tolerance, and
        with the accel held inside its hard limits even when the solver stopped before converging."""
        a = np.concatenate(([x0[2]], self.phi_a @ x0 + self.g_a @ j))
        if a.min() < ACCEL_MIN - 1e-6 or a[1:].max() > a_hi + 1e-6:
            j = self._clamp_jerk(x0[2], j, a_hi)  # rare: only a solve that stopped early gets here
            a = np.concatenate(([x0[2]], self.phi_a @ x0 + self.g_a @ j))
        s = np.concatenate(([x0[0]], self.phi_s @ x0 + self.g_s @ j))
        v = np.concatenate(([x0[1]], self.phi_v @ x0 + self.g_v @ j))
        return MpcSolution(T_IDXS, s, np.maximum(v, 0.0), a, np.concatenate((j, j[-1:])), status, solve_time, slack, ok)

    @staticmethod
    def _clamp_jerk(a0: float, j: np.ndarray, a_hi: float) -> np.ndarray:
        j, a = j.copy(), a0
        for k, dt in enumerate(DTS):
            j[k] = min(max(j[k], (ACCEL_MIN - a) / dt), (a_hi - a) / dt)
            a += j[k] * dt
        return j


def fcw_needed(v_ego: float, a_ego: float, lead: Lead, margin: float = 0.0, horizon: float = 10.0) -> bool:
    """True when even our hardest planned braking (ramping at JERK_MIN to ACCEL_MIN) would not keep a
    positive gap to the lead: the driver has to brake harder than the system may."""
    t = np.arange(0.0, horizon, 0.05)
    a0 = min(a_ego, 0.0)
    t_ramp = (a0 - ACCEL_MIN) / -JERK_MIN
    tr = np.minimum(t, t_ramp)
    # ego: accel ramps from a0 down to ACCEL_MIN, then holds, until the ego stops
    v_ramp = v_ego + a0 * tr + 0.5 * JERK_MIN * tr * tr
    s_ramp = v_ego * tr + 0.5 * a0 * tr * tr + JERK_MIN * tr ** 3 / 6
    th = np.maximum(t - t_ramp, 0.0)
    v = v_ramp + ACCEL_MIN * th
    s = s_ramp + v_ramp * th + 0.5 * ACCEL_MIN * th * th
    del v
    s = np.maximum.accumulate(s)  # past its stop the formula would roll the ego backwards: it stays stopped
    s_lead, _ = predict_lead(lead, t)
    return bool(np.min(s_lead - s) < margin)
