"""A simulated drive's report, computed from its recorded route (never from the daemons' own tallies):

    r = DriveReport.from_route(route_path)   # a route folder (or anything LogReader takes) with simState in it
    print(r.text()); r.to_json(os.path.join(route_path, "report.json")); r.plot(os.path.join(route_path, "report.png"))

Ground truth comes from simState (20 Hz): speed, acceleration, offset to the lane centre, same-lane leads,
collisions and lane departures. Engagement, disengagements and alerts come from selfdriveState and
onroadEvents (and, for a supervised drive, why the scripted driver took over, from simState), CPU from
managerState (the manager's psutil reading per process), missed model frames from matching modelV2's frameIds
against roadCameraState's.

Times: every figure is on the simulator's clock (simState.t, s since the scenario started). In real time every
message is stamped with the machine's clock; in lockstep every daemon runs on the world's clock (common.clock), so
every stamp is the world's. Either way a daemon's message belongs to the last simState placed at or before it
(routes from before the one clock: each simState placed at the stamp of the message loggerd wrote just before
it). How long the drive took in real time is simState.wallMonoTime's span.

Definitions (also in `text()`): engaged = selfdriveState.enabled (engaged, pre-enabled, overriding or soft
disabling); the engaged fraction is taken over the time from the first engagement to the end of the drive
(the scripted driver drives by hand until it engages the cruise); the lateral error, min time gap and max
jerk are taken while engaged (the stack's doing), with whole-drive values beside them.
"""

import json
import math
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import numpy as np

from common.clock import DRIVEN
from selfdrive.loggerd.logreader import LogError, LogReader
from selfdrive.loggerd.route import route_of

SERVICES = ("simState", "selfdriveState", "onroadEvents", "managerState", "modelV2", "roadCameraState", "carState",
            "logMessage", "carParams", "longitudinalPlan", "carControl", "liveTorqueParameters")
LEAD_SOURCE_WORDS = {"radar": "the radar (matched to the model's lead)", "vision": "the model alone"}
TAKEOVER_WINDOW_S = (1.0, 0.1)  # a scripted driver's takeover this long before/after a disengagement caused it
DISABLE_TYPES = ("immediateDisable", "softDisable", "userDisable")   # strongest first
OVERRIDE_TYPES = ("overrideLateral", "overrideLongitudinal")
# not evidence that the recording ran at the time they are stamped with: simState is stamped on the bus clock in
# lockstep (seconds behind the machine's once the world has paused), and carParams is latched (loggerd writes its
# newest message, old stamp and all, at the start of every segment)
OTHER_CLOCK = frozenset({"simState", "carParams"})
STALE_S = 0.5              # selfdriveState older than this: selfdrived is silent, nothing is engaged
RECORDING_GAP_S = 0.5      # simState (20 Hz) missing this long: nothing was recorded (loggerd down, disk full)
REASON_WINDOW_S = (0.3, 0.05)  # onroadEvents this long before/after a disengagement explain it
GAP_MIN_SPEED = 1.0        # m/s: below it a time gap means nothing (standing behind a car)
OSC_HZ = 1.0               # the steering command's content above this is oscillation: roads ask for slower changes
OSC_MIN_RUN_S = 2.0        # lateral control active at least this long to take a run's spectrum
JERK_SMOOTH_S = 0.25       # aEgo's moving average before differentiating: 20 Hz steps are not what one feels
CLOCKS_APART_S = 0.25      # simState stamps this far (median) from their neighbours': another clock (lockstep)
BUS_TICK_NS = 10_000_000   # lockstep's bus clock advances in exact 10 ms steps; the machine's clock never does
# the closed-loop thresholds; the headline says which ones a drive misses
LIMITS = {"lat_err_mean_m": 0.25, "min_time_gap_s": 0.8, "engaged_fraction": 0.95,
          # comfort (issue 22): the torque command's oscillation above OSC_HZ (the old controller's 3 Hz chatter:
          # 0.13-0.15 of full torque; now 0.02-0.03 on the highway, and up to 0.06 on curvy roads, where the curves
          # themselves change at 1-1.5 Hz) and lateral jerk (openpilot's plans stay within 5 m/s³)
          "steer_osc_rms": 0.08, "max_lat_jerk": 5.0}
# what the user-disable events mean in words; other events' alerts carry their own text
USER_WORDS = {"brakePressed": "the driver braked", "cruiseDisengaged": "the car's cruise control turned off",
              "buttonCancel": "the driver pressed cancel"}


@dataclass
class Disengagement:
    t: float              # s, simulated
    reason: str           # event name(s), e.g. "brakePressed, cruiseDisengaged"
    kind: str             # the strongest disable type among them, or "stale" / "unknown"
    alert: str            # what the driver was shown (may be empty)
    driver: str = ""      # why the simulator's supervising driver took over, when it did (simState says)


@dataclass
class SteeringLearnt:
    """torqued's estimate of the car's steering response, as it ended the drive."""
    lat_accel_factor: float       # m/s² per unit torque
    car_lat_accel_factor: float   # what carParams says
    friction: float               # m/s²
    source: str                   # carParams, stored, learning, learned
    confidence: float
    learned_t: float | None       # s (simulated) when it was first fully learnt; None: not in this drive


@dataclass
class Trace:
    """One row per simState: the drive on the simulator's clock."""
    t: np.ndarray
    v: np.ndarray
    a: np.ndarray
    lat: np.ndarray         # laneCenterOffset, NaN off the lanes
    lat_accel: np.ndarray   # m/s^2, vEgo * yawRate
    steer: np.ndarray       # deg
    lead_d: np.ndarray      # nearest same-lane lead's dRel, NaN without one
    lead_v: np.ndarray
    collision: np.ndarray
    departure: np.ndarray
    wall: np.ndarray        # ns on the machine's clock (see the module doc)
    engaged: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    set_speed: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def dt(self) -> np.ndarray:
        """Each row's share of simulated time (the first row covers the time since the scenario began)."""
        return np.diff(self.t, prepend=0.0).clip(min=0.0)

    def time_gap(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.v > GAP_MIN_SPEED, self.lead_d / self.v, np.nan)

    def jerk(self) -> np.ndarray:
        return self._smooth_rate(self.a)

    def lat_jerk(self) -> np.ndarray:
        return self._smooth_rate(self.lat_accel)

    def steer_rate(self) -> np.ndarray:
        """deg/s of the steering wheel (simState's angle, 20 Hz)."""
        return np.gradient(self.steer, self.t) if len(self.t) >= 3 else np.zeros(len(self.t))

    def _smooth_rate(self, x: np.ndarray) -> np.ndarray:
        """The rate of change of x averaged over JERK_SMOOTH_S first: 20 Hz steps are not what one feels."""
        if len(self.t) < 3:
            return np.zeros(len(self.t))
        n = max(1, round(JERK_SMOOTH_S / max(float(np.median(np.diff(self.t))), 1e-3)))
        pad = np.pad(x, (n // 2, n - 1 - n // 2), mode="edge")
        return np.gradient(np.convolve(pad, np.ones(n) / n, mode="valid"), self.t)


def _runs(flags: np.ndarray) -> list[int]:
    """Indices where a run of True begins."""
    f = np.asarray(flags, bool)
    return [int(i) for i in np.flatnonzero(f & ~np.concatenate(([False], f[:-1])))]


def _fmax(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    return float(np.max(x)) if len(x) else None


def _rms(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    return float(np.sqrt(np.mean(x * x))) if len(x) else None


def oscillation(torque: np.ndarray, active: np.ndarray, dt: float = 0.01) -> tuple[float | None, float | None]:
    """(RMS of the steering command above OSC_HZ, that part's share of the command's energy) over the runs in
    which lateral control was active (OSC_MIN_RUN_S or longer; each run's mean taken out). One sample per control
    cycle (`dt`); None when no run is long enough."""
    high = total = 0.0
    n = 0
    for a in _runs(active):
        b = a + int(np.argmin(active[a:])) if not active[a:].all() else len(active)
        if (b - a) * dt < OSC_MIN_RUN_S:
            continue
        x = torque[a:b] - np.mean(torque[a:b])
        spec = np.fft.rfft(x)
        spec[np.fft.rfftfreq(len(x), dt) <= OSC_HZ] = 0.0
        high += float(np.sum(np.fft.irfft(spec, len(x)) ** 2))
        total += float(np.sum(x * x))
        n += len(x)
    if n == 0:
        return None, None
    return math.sqrt(high / n), (high / total if total > 0 else 0.0)


def _fmin(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    return float(np.min(x)) if len(x) else None


class _SimRow(NamedTuple):
    """One simState, as the report reads it."""
    wall: int            # its logMonoTime
    prev_wall: int | None  # the logMonoTime of the message recorded just before it (on the machine's clock)
    t: float
    v: float
    a: float
    lat: float           # m off the lane centre (nan: off the lanes)
    steer: float
    lead_d: float        # the nearest same-lane lead (nan: none)
    lead_v: float
    collision: bool
    departure: bool
    lat_accel: float


class _SdRow(NamedTuple):
    """One selfdriveState, as the report reads it."""
    wall: int
    enabled: bool
    state: str
    alert_type: str
    text1: str
    text2: str


class _Logs:
    """What the report needs from a route, pulled out of the capnp readers in one pass in file order."""

    def __init__(self, source: str):
        self.lr = LogReader(source, sort_by_time=False, services=SERVICES)
        route = route_of(source)
        # the clock the daemons ran on, as loggerd recorded it in route.json (None: a route from before it did)
        self.clock: str | None = route.meta().get("clock") if route is not None else None
        self.sim: list[_SimRow] = []
        self.sd: list[_SdRow] = []
        self.events: list[tuple[int, list[tuple[str, tuple[str, ...]]]]] = []
        self.mgr: list[tuple[int, list[tuple[str, float, bool]]]] = []
        self.restarts: dict[str, int] = {}  # as the newest managerState counts them
        self.model: list[tuple[int, int, int, float]] = []
        self.cam: list[tuple[int, int]] = []
        self.cruise: list[tuple[int, float, bool]] = []
        self.steer_cmd: list[tuple[int, float, bool]] = []  # carControl: (wall, torque command, lateral active)
        self.torque: list[tuple[int, float, float, float, str, float]] = []  # liveTorqueParameters, see SteeringLearnt
        self.takeovers: list[tuple[float, str]] = []  # (simulated s, why), as simState counted them
        self.scenario, self.seed = "", 0
        self.car = ""  # the platform card drove it as (carParams)
        self.lead_sources: Counter[str] = Counter()  # plans with a lead, by who placed it (radar, vision)
        last_wall = None
        self.real_ns = (0, 0)  # the machine's clock at the first and last simState (simState.wallMonoTime)
        recorded: list[int] = []
        for ev in self.lr:
            w, s = ev.logMonoTime, ev.which()
            if s not in OTHER_CLOCK:
                recorded.append(w)
            if s == "simState":
                self._sim(ev.simState, w, last_wall)
                continue
            last_wall = w
            if s == "selfdriveState":
                d = ev.selfdriveState
                self.sd.append(_SdRow(w, d.enabled, str(d.state), d.alertType, d.alertText1, d.alertText2))
            elif s == "onroadEvents":
                self.events.append((w, [(e.name, tuple(k for k in (*DISABLE_TYPES, *OVERRIDE_TYPES) if getattr(e, k)))
                                        for e in ev.onroadEvents]))
            elif s == "managerState":
                self.mgr.append((w, [(p.name, p.cpuPercent, p.running) for p in ev.managerState.processes]))
                self.restarts = {p.name: p.restarts for p in ev.managerState.processes if p.restarts}
            elif s == "modelV2":
                m = ev.modelV2
                self.model.append((w, m.frameId, m.framesDropped, m.frameDropPerc))
            elif s == "roadCameraState":
                self.cam.append((w, ev.roadCameraState.frameId))
            elif s == "carControl":
                cc = ev.carControl
                self.steer_cmd.append((w, cc.actuators.torque, cc.latActive))
            elif s == "carState":
                self.cruise.append((w, ev.carState.cruiseState.speed, ev.carState.cruiseState.enabled))
            elif s == "longitudinalPlan" and ev.longitudinalPlan.hasLead:
                self.lead_sources[str(ev.longitudinalPlan.leadSource)] += 1
            elif s == "liveTorqueParameters":
                lt = ev.liveTorqueParameters
                self.torque.append((w, lt.latAccelFactor, lt.carLatAccelFactor, lt.friction, str(lt.source),
                                    lt.confidence))
            elif s == "carParams" and not self.car:
                self.car = ev.carParams.carFingerprint
        # the stamps of the messages on the machine's clock: where the recording itself has gaps (simState alone
        # does not tell: in lockstep the world pauses while the stack does not answer, and nothing of the world is
        # recorded then)
        self.recorded = np.sort(np.array(recorded, np.int64))

    def _sim(self, ss, w: int, last_wall: int | None) -> None:
        same = [ld for ld in ss.leads if ld.sameLane and ld.dRel > 0]
        lead = min(same, key=lambda ld: ld.dRel) if same else None
        lat = ss.laneCenterOffset if ss.laneIndex != -128 else math.nan  # -128: off the lanes, no offset
        d, v = (lead.dRel, lead.vLead) if lead else (math.nan, math.nan)
        self.sim.append(_SimRow(w, last_wall, ss.t, ss.vEgo, ss.aEgo, lat, ss.steeringAngleDeg, d, v, ss.collision,
                                ss.laneDeparture, ss.vEgo * ss.yawRate))
        if ss.takeovers > len(self.takeovers):  # (two within one simState: only the last one's why is known)
            self.takeovers.append((ss.lastTakeoverT, ss.lastTakeover))
        self.scenario, self.seed = ss.scenario, ss.seed
        if ss.wallMonoTime:  # routes before it was recorded have none
            self.real_ns = (self.real_ns[0] or ss.wallMonoTime, ss.wallMonoTime)

    def lockstep(self, own: np.ndarray, nb: np.ndarray) -> bool:
        """Whether the drive ran in lockstep: as route.json records it; for a route from before it did, a lockstep
        drive's simState stamps lie on the bus clock's exact 10 ms grid, or far from their neighbours' (the median:
        one loggerd stall must not decide it)."""
        if self.clock is not None:
            return self.clock == DRIVEN
        steps = np.diff(own)
        on_grid = len(steps) > 0 and float(np.mean(steps % BUS_TICK_NS == 0)) > 0.9
        return on_grid or bool(np.median(np.abs(own - nb)) > CLOCKS_APART_S * 1e9)

    def trace(self) -> tuple[Trace, bool]:
        """The simState rows, placed where the daemons' messages are (in lockstep the message recorded just before
        each simState stands in for its stamp); True when the drive ran in lockstep."""
        rows = self.sim
        own = np.array([r.wall for r in rows], np.int64)
        nb = np.array([r.wall if r.prev_wall is None else r.prev_wall for r in rows], np.int64)
        lockstep = self.lockstep(own, nb)

        def col(name: str, kind=float) -> np.ndarray:
            return np.array([getattr(r, name) for r in rows], kind)
        return Trace(t=col("t"), v=col("v"), a=col("a"), lat=col("lat"), steer=col("steer"), lead_d=col("lead_d"),
                     lead_v=col("lead_v"), collision=col("collision", bool), departure=col("departure", bool),
                     lat_accel=col("lat_accel"), wall=np.maximum.accumulate(nb if lockstep else own)), lockstep


def _latest(walls: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Index of the last message at or before each time in `at` (-1: none yet)."""
    return np.searchsorted(walls, at, side="right") - 1


@dataclass
class DriveReport:
    route: str
    scenario: str
    seed: int
    minutes: float
    wall_s: float
    lockstep: bool
    distance_m: float
    engaged_minutes: float
    engaged_fraction: float            # of the time since the first engagement (0 if never engaged)
    engaged_fraction_of_drive: float
    first_engaged_t: float | None      # s: the first simState at which it was engaged
    engagements: int
    disengagements: list[Disengagement]
    overrides: dict[str, int]
    lane_departures: int
    lane_departure_times: list[float]
    collisions: int
    collision_times: list[float]
    lat_err_mean_m: float | None       # while engaged
    lat_err_p95_m: float | None
    lat_err_mean_all_m: float | None
    min_time_gap_s: float | None       # while engaged; None: never a same-lane lead while moving
    min_time_gap_t: float | None
    min_time_gap_all_s: float | None
    max_jerk: float | None             # m/s^3 while engaged
    max_jerk_all: float | None
    max_lat_jerk: float | None         # m/s^3 while engaged (vEgo * yawRate averaged like aEgo)
    steer_rate_rms_deg_s: float | None  # the steering wheel's rate while engaged
    steer_osc_rms: float | None        # the torque command's RMS above OSC_HZ while lateral control is active
    steer_osc_share: float | None      # that part's share of the command's energy
    alerts: dict[str, int]
    alert_texts: dict[str, str]
    cpu_cores: dict[str, float]        # average cores over the drive's wall time, per process
    cpu_total_cores: float | None
    camera_frames: int
    missed_model_frames: int | None    # camera frames of the drive without a modelV2; None: no camera frames
    modeld_frames_dropped: int | None  # modeld's own count (summed over restarts), for comparison
    modeld_max_drop_perc: float | None
    problems: list[str]
    car: str = ""                      # the platform card drove it as (carParams); "" when card did not run
    lead_sources: dict[str, int] = field(default_factory=dict)  # plans with a lead, by source: radar, vision
    restarts: dict[str, int] = field(default_factory=dict)      # processes the manager restarted (died) in the route
    recording_gaps: list[tuple[float, float]] = field(default_factory=list)  # s: spans with nothing recorded
    steering: SteeringLearnt | None = None  # torqued's estimate at the end; None: torqued did not run
    trace: Trace | None = field(default=None, repr=False)

    # --- building ------------------------------------------------------------------------------------------
    @classmethod
    def from_route(cls, source: str) -> "DriveReport":
        """Raises LogError when `source` is not a log or holds no simState (not a simulated drive)."""
        logs = _Logs(source)
        if not logs.sim:
            raise LogError(f"{source}: no simState in it: not a simulated drive (nothing to score)")
        tr, lockstep = logs.trace()
        lo, hi = int(tr.wall[0]), int(tr.wall[-1])
        sd_wall = np.array([r.wall for r in logs.sd], np.int64)
        sd_on = np.array([r.enabled for r in logs.sd], bool)
        i = _latest(sd_wall, tr.wall)
        fresh = (i >= 0) & (tr.wall - sd_wall[i.clip(min=0)] < STALE_S * 1e9) if len(sd_wall) else i >= 0
        tr.engaged = fresh & sd_on[i.clip(min=0)] if len(sd_wall) else np.zeros(len(tr.t), bool)
        cr_wall = np.array([r[0] for r in logs.cruise], np.int64)
        j = _latest(cr_wall, tr.wall)
        tr.set_speed = (np.array([r[1] if r[2] else math.nan for r in logs.cruise])[j.clip(min=0)]
                        if len(cr_wall) else np.full(len(tr.t), math.nan))
        tr.set_speed[j < 0] = math.nan
        eng, dt = tr.engaged, tr.dt
        total, engaged_s = float(tr.t[-1]), float(np.sum(dt[eng]))
        starts = _runs(eng)
        # the first engaged simState's time; "since" counts its row and every later one (as the closed-loop tests do)
        first = float(tr.t[starts[0]]) if starts else None
        since = float(np.sum(dt[starts[0]:])) if starts else 0.0
        lat, gap, jerk = np.abs(tr.lat), tr.time_gap(), np.abs(tr.jerk())
        lat_eng = lat[eng & np.isfinite(lat)]
        gap_eng = np.where(eng, gap, np.nan)
        k_gap = int(np.nanargmin(gap_eng)) if np.isfinite(gap_eng).any() else None
        cpu, cpu_total = _cpu(logs.mgr, lo, hi)
        cam_n, missed, own_dropped, own_perc = _model_frames(logs, lo, hi)
        problems = [f"{p}: {w}" for p, w in logs.lr.problems]
        if not logs.sd:
            problems.append("no selfdriveState in the route: engagement unknown (counted as not engaged)")
        if not logs.mgr:
            problems.append("no managerState in the route: CPU per process not available")
        alerts, texts = _alerts(logs.sd, hi)
        steer = np.array([r[1:] for r in logs.steer_cmd], float).reshape(-1, 2)
        osc_rms, osc_share = oscillation(steer[:, 0], steer[:, 1] > 0)
        return cls(steering=_steering(logs.torque, tr),
            route=os.path.abspath(source) if os.path.exists(source) else source, scenario=logs.scenario,
            seed=logs.seed, car=logs.car, lead_sources=dict(logs.lead_sources), restarts=logs.restarts,
            recording_gaps=[(float(tr.t[k]), float(tr.t[k + 1]))
                            for k in np.flatnonzero(np.diff(tr.t) > RECORDING_GAP_S)],
            minutes=total / 60.0,
            wall_s=(logs.real_ns[1] - logs.real_ns[0]) / 1e9 if logs.real_ns[0] else (hi - lo) / 1e9,
            lockstep=lockstep,
            distance_m=float(np.sum(tr.v * dt)), engaged_minutes=engaged_s / 60.0,
            engaged_fraction=engaged_s / since if since > 0 else 0.0,
            engaged_fraction_of_drive=engaged_s / total if total > 0 else 0.0, first_engaged_t=first,
            engagements=_engagements(sd_wall, sd_on, lo, hi), disengagements=_disengagements(logs, tr, lo, hi),
            overrides=_overrides(logs.sd, logs.events, lo, hi),
            lane_departures=len(_runs(tr.departure)),
            lane_departure_times=[float(tr.t[k]) for k in _runs(tr.departure)],
            collisions=len(_runs(tr.collision)), collision_times=[float(tr.t[k]) for k in _runs(tr.collision)],
            lat_err_mean_m=float(np.mean(lat_eng)) if len(lat_eng) else None,
            lat_err_p95_m=float(np.percentile(lat_eng, 95)) if len(lat_eng) else None,
            lat_err_mean_all_m=float(np.nanmean(lat)) if np.isfinite(lat).any() else None,
            min_time_gap_s=None if k_gap is None else float(gap_eng[k_gap]),
            min_time_gap_t=None if k_gap is None else float(tr.t[k_gap]), min_time_gap_all_s=_fmin(gap),
            max_jerk=_fmax(jerk[eng]), max_jerk_all=_fmax(jerk), max_lat_jerk=_fmax(np.abs(tr.lat_jerk())[eng]),
            steer_rate_rms_deg_s=_rms(tr.steer_rate()[eng]), steer_osc_rms=osc_rms, steer_osc_share=osc_share,
            alerts=alerts, alert_texts=texts,
            cpu_cores=cpu, cpu_total_cores=cpu_total, camera_frames=cam_n, missed_model_frames=missed,
            modeld_frames_dropped=own_dropped, modeld_max_drop_perc=own_perc, problems=problems, trace=tr)

    # --- output ---------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("trace")
        return d

    def to_json(self, path: str | None = None) -> str:
        """The report as JSON (no plot data); also written to `path` when given (the CLI: <route>/report.json)."""
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False, default=_json_default)
        if path is not None:
            with open(path, "w") as f:
                f.write(text + "\n")
        return text

    def verdict(self) -> list[str]:
        """What falls short of the issue's closed-loop thresholds (empty: nothing)."""
        out = []
        if self.collisions:
            out.append(f"{self.collisions} collision{'s' * (self.collisions > 1)}")
        if self.lane_departures:
            out.append(f"{self.lane_departures} lane departure{'s' * (self.lane_departures > 1)}")
        if self.engagements == 0:
            out.append("never engaged")
        elif self.engaged_fraction < LIMITS["engaged_fraction"]:
            out.append(f"engaged only {self.engaged_fraction:.0%} after the first engagement")
        if self.lat_err_mean_m is not None and self.lat_err_mean_m > LIMITS["lat_err_mean_m"]:
            out.append(f"mean lateral error {self.lat_err_mean_m:.2f} m")
        if self.min_time_gap_s is not None and self.min_time_gap_s < LIMITS["min_time_gap_s"]:
            out.append(f"time gap down to {self.min_time_gap_s:.2f} s")
        if self.missed_model_frames:
            out.append(f"{self.missed_model_frames} missed model frames")
        if self.steer_osc_rms is not None and self.steer_osc_rms > LIMITS["steer_osc_rms"]:
            out.append(f"steering oscillation {self.steer_osc_rms:.3f} of full torque")
        if self.max_lat_jerk is not None and self.max_lat_jerk > LIMITS["max_lat_jerk"]:
            out.append(f"lateral jerk up to {self.max_lat_jerk:.1f} m/s^3")
        return out

    def text(self) -> str:
        return "\n".join(_text_lines(self))

    def plot(self, path_png: str) -> str:
        """Speed, lead gap, lateral error and steering over the drive's time, engaged spans shaded; returns the path."""
        from tools.sim.lib.drive_plot import plot_report  # matplotlib only where a picture is drawn
        plot_report(self, path_png)
        return path_png

    def save(self, directory: str | None = None) -> tuple[str, str]:
        """Writes report.json and report.png into `directory` (default: the route folder); returns their paths."""
        directory = directory or self.route
        return (self._write(self.to_json, os.path.join(directory, "report.json")),
                self._write(self.plot, os.path.join(directory, "report.png")))

    @staticmethod
    def _write(fn, path: str) -> str:
        fn(path)
        return path


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


# --- the pieces -------------------------------------------------------------------------------------------
def _steering(rows: list, tr: Trace) -> SteeringLearnt | None:
    if not rows:
        return None
    w, factor, car, friction, source, conf = rows[-1]
    learned = next((r[0] for r in rows if r[4] == "learned"), None)
    t = None if learned is None else float(tr.t[min(int(np.searchsorted(tr.wall, learned)), len(tr.t) - 1)])
    return SteeringLearnt(factor, car, friction, source, conf, t)


def _cpu(mgr: list, lo: int, hi: int) -> tuple[dict[str, float], float | None]:
    """Average cores per process over the managerState messages of the drive: each message holds the share of a
    core each process used since the previous one (psutil, the manager's 2 Hz cycle), so their mean is the
    time average. A process that was not running counts as 0 for that message; one that never ran is left out."""
    rows = [procs for w, procs in mgr if lo <= w <= hi] or [procs for _, procs in mgr[-1:]]
    if not rows:
        return {}, None
    names = sorted({n for procs in rows for n, _, running in procs if running})  # not the ones that never ran
    sums: Counter = Counter()
    for procs in rows:
        for n, pct, _ in procs:
            sums[n] += pct / 100.0
    cpu = {n: round(sums[n] / len(rows), 3) for n in names}
    return dict(sorted(cpu.items(), key=lambda kv: -kv[1])), round(sum(cpu.values()), 3)


def _model_frames(logs: _Logs, lo: int, hi: int) -> tuple[int, int | None, int | None, float | None]:
    """(camera frames in the drive, those without a modelV2, modeld's own dropped count, its max drop %).

    A camera frame counts when roadCameraState logged it within the drive and its frameId is not past the last
    modelV2's (the frames in flight when the recording stopped are not missed)."""
    cam = sorted({f for w, f in logs.cam if lo <= w <= hi})
    model_ids = {f for _, f, _, _ in logs.model}
    if not cam:
        return 0, None, None, None
    last = max(model_ids) if model_ids else None
    counted = [f for f in cam if last is None or f <= last]
    missed = sum(1 for f in counted if f not in model_ids)
    own, prev, perc = 0, 0, None
    for _, _, dropped, p in logs.model:
        if dropped < prev:     # modeld restarted: its counter began again
            own += prev
        prev = dropped
        perc = p if perc is None else max(perc, p)
    return len(counted), missed, (own + prev) if logs.model else None, perc


def _flagged(events: list, ev_wall: np.ndarray, w: float, types: tuple[str, ...]) -> dict[str, str]:
    """{event name: its first type among `types`} over the onroadEvents around machine time `w`."""
    a, b = np.searchsorted(ev_wall, [w - REASON_WINDOW_S[0] * 1e9, w + REASON_WINDOW_S[1] * 1e9])
    found: dict[str, str] = {}
    for _, evs in events[a:b]:
        for name, flags in evs:
            kinds = [t for t in types if t in flags]
            if kinds and name not in found:
                found[name] = kinds[0]
    return found


def _reason(logs: _Logs, ev_wall: np.ndarray, w: int, k: int) -> tuple[str, str, str]:
    """(event names, strongest disable type, alert) for the disengagement at machine time `w` (selfdriveState k)."""
    found = _flagged(logs.events, ev_wall, w, DISABLE_TYPES)
    alert = ""
    for sw, _, _, atype, t1, t2 in logs.sd[k:k + 40]:      # the alert shown within the next few cycles
        if sw - w > REASON_WINDOW_S[0] * 1e9:
            break
        if atype.split("/")[-1] in DISABLE_TYPES and (t1 or t2):
            alert = " / ".join(x for x in (t1, t2) if x)
            found = found or {atype.split("/")[0]: atype.split("/")[-1]}
            break
    if not found:
        return "unknown (no disabling event logged)", "unknown", alert
    kind = min(found.values(), key=DISABLE_TYPES.index)
    names = sorted(found, key=lambda n: DISABLE_TYPES.index(found[n]))
    return ", ".join(names), kind, alert


def _disengagements(logs: _Logs, tr: Trace, lo: int, hi: int) -> list[Disengagement]:
    """Every enabled -> not enabled step of selfdriveState within the drive, and every time selfdriveState stopped
    coming while enabled (selfdrived gone: nothing is engaged, whatever its last message said). A span in which
    nothing at all was recorded (loggerd down, disk full) says nothing about selfdrived."""
    ev_wall = np.array([w for w, _ in logs.events], np.int64)
    out = []

    def recorded_between(a: float, b: float) -> bool:
        """Whether anything was recorded in (a, b): selfdrived silent, not the recording."""
        k = int(np.searchsorted(logs.recorded, a, side="right"))
        return k < len(logs.recorded) and logs.recorded[k] < b

    def at(w: float) -> float:
        return float(tr.t[max(0, int(_latest(tr.wall, np.array([w]))[0]))])
    prev = None
    for k, (w, on, *_rest) in enumerate(logs.sd):
        if prev is not None and prev[1] and w - prev[0] > STALE_S * 1e9 and lo <= prev[0] + STALE_S * 1e9 <= hi:
            if recorded_between(prev[0] + STALE_S * 1e9, w - STALE_S * 1e9):
                out.append(Disengagement(at(prev[0] + STALE_S * 1e9), "selfdriveState stopped (selfdrived silent "
                                         f"{(w - prev[0]) / 1e9:.1f} s)", "stale", ""))
        elif prev is not None and prev[1] and not on and lo <= w <= hi:
            reason, kind, alert = _reason(logs, ev_wall, w, k)
            t = at(w)
            why = [y for x, y in logs.takeovers if t - TAKEOVER_WINDOW_S[0] <= x <= t + TAKEOVER_WINDOW_S[1]]
            out.append(Disengagement(t, reason, kind, alert, why[-1] if why else ""))
        prev = (w, on)
    if prev is not None and prev[1] and prev[0] + STALE_S * 1e9 < hi:
        out.append(Disengagement(at(prev[0] + STALE_S * 1e9), "selfdriveState stopped (selfdrived silent until the "
                                 "end)", "stale", ""))
    return out


def _engagements(walls: np.ndarray, on: np.ndarray, lo: int, hi: int) -> int:
    """Not enabled -> enabled steps of selfdriveState within the drive (100 Hz: as the disengagements are
    counted, so one shorter than a simState period is not lost), and one if it was engaged as the drive began."""
    k = np.flatnonzero((walls >= lo) & (walls <= hi))
    if not len(k):
        return 0
    prev = on[k[0] - 1] if k[0] > 0 else False
    seq = np.concatenate(([prev], on[k]))
    return int(np.sum(seq[1:] & ~seq[:-1]) + (1 if prev and on[k[0]] else 0))


def _overrides(sd: list, events: list, lo: int, hi: int) -> dict[str, int]:
    """How often the driver overrode the engaged stack (entries into `overriding`), by the override events then."""
    ev_wall = np.array([w for w, _ in events], np.int64)
    out: Counter = Counter()
    prev = ""
    for w, _, state, *_rest in sd:
        if state == "overriding" and prev != "overriding" and lo <= w <= hi:
            out["+".join(_flagged(events, ev_wall, w, OVERRIDE_TYPES)) or "unknown"] += 1
        prev = state
    return dict(out)


def _alerts(sd: list, hi: int) -> tuple[dict[str, int], dict[str, str]]:
    """Alerts the driver saw (with text) from the start of the route to the end of the drive: each time one came up."""
    counts: Counter = Counter()
    texts: dict[str, str] = {}
    prev = ""
    for w, _, _, atype, t1, t2 in sd:
        if w > hi:
            break
        shown = atype if (t1 or t2) else ""
        if shown and shown != prev:
            counts[shown] += 1
            texts.setdefault(shown, " / ".join(x for x in (t1, t2) if x))
        prev = shown
    return dict(counts.most_common()), texts


# --- the text ---------------------------------------------------------------------------------------------
def _m(x: float | None, fmt: str, unit: str, none: str = "n/a") -> str:
    return none if x is None else f"{x:{fmt}} {unit}".rstrip()


def _reason_words(d: Disengagement) -> str:
    from selfdrive.selfdrived.events import ET, EVENTS
    words = []
    for name in d.reason.split(", "):
        if name in USER_WORDS:
            words.append(USER_WORDS[name])
        elif name in EVENTS and d.kind in {e.value for e in ET} and ET(d.kind) in EVENTS[name]:
            words.append(EVENTS[name][ET(d.kind)].text2 or name)
    return "; ".join(words)


def _headline(r: DriveReport) -> list[str]:
    short = r.verdict()
    clock = "lockstep" if r.lockstep else "real time"
    car = f", car {r.car}" if r.car else ""
    return [f"Drive report: {r.scenario} (seed {r.seed}{car}), {r.minutes:.2f} simulated min, {r.distance_m:.0f} m, "
             f"{clock}, {r.wall_s:.0f} s of wall time",
             f"  route {r.route}",
             "  verdict: " + (f"meets the closed-loop thresholds ({_limits_words()})" if not short
                              else "short of the thresholds: " + "; ".join(short))]


def _engagement_lines(r: DriveReport) -> list[str]:
    """Engaged how long, the disengagements and why, the driver's overrides."""
    lines: list[str] = []
    if r.first_engaged_t is None:
        lines.append("  engaged: never (the stack never took over from the scripted driver)")
    else:
        lines.append(f"  engaged {r.engaged_minutes:.2f} of {r.minutes:.2f} min: {r.engaged_fraction:.0%} of the time "
                     f"after the first engagement at {r.first_engaged_t:.2f} s ({r.engaged_fraction_of_drive:.0%} of "
                     f"the whole drive), {r.engagements} engagement{'s' * (r.engagements != 1)}")
    lines.append(f"  disengagements: {len(r.disengagements)}")
    for d in r.disengagements[:12]:
        why = _reason_words(d)
        lines.append(f"    {d.t:7.1f} s  {d.reason} ({d.kind})" + (f": {why}" if why else "") +
                     (f"  [alert: {d.alert}]" if d.alert else "") + (f"  [the driver: {d.driver}]" if d.driver else ""))
    if len(r.disengagements) > 12:
        lines.append(f"    ... and {len(r.disengagements) - 12} more (report.json has them all)")
    if r.overrides:
        lines.append("  driver overrides while engaged: " + ", ".join(f"{n} x{c}" for n, c in r.overrides.items()))
    return lines


def _safety_lines(r: DriveReport) -> list[str]:
    """Collisions, lane departures, lateral error, time gaps, the lead's source, jerk."""
    lines: list[str] = []
    lines.append(f"  collisions: {r.collisions}" + _at(r.collision_times) +
                 f"; lane departures: {r.lane_departures}" + _at(r.lane_departure_times))
    lines.append(f"  lateral error to the lane centre while engaged: mean {_m(r.lat_err_mean_m, '.2f', 'm')}, "
                 f"p95 {_m(r.lat_err_p95_m, '.2f', 'm')} (whole drive: mean {_m(r.lat_err_mean_all_m, '.2f', 'm')})")
    gap = ("no lead in the same lane while engaged and moving" if r.min_time_gap_s is None
           else f"{r.min_time_gap_s:.2f} s at {r.min_time_gap_t:.1f} s")
    lines.append(f"  min time gap to a same-lane lead (dRel / vEgo above {GAP_MIN_SPEED:g} m/s) while engaged: {gap} "
                 f"(whole drive: {_m(r.min_time_gap_all_s, '.2f', 's', 'no lead')})")
    n_lead = sum(r.lead_sources.values())
    lines.append("  lead placed by: no plan had a lead" if not n_lead else "  lead placed by: " + ", ".join(
        f"{LEAD_SOURCE_WORDS.get(k, k)} {c / n_lead:.0%}" for k, c in r.lead_sources.items()) + f" of {n_lead} plans")
    lines.append(f"  max longitudinal jerk while engaged: {_m(r.max_jerk, '.1f', 'm/s^3')} (whole drive: "
                 f"{_m(r.max_jerk_all, '.1f', 'm/s^3')}; aEgo averaged over {JERK_SMOOTH_S:g} s)")
    return lines


def _steering_lines(r: DriveReport) -> list[str]:
    """Steering comfort and torqued's estimate of the car's response."""
    lines: list[str] = []
    osc = ("no run of lateral control long enough" if r.steer_osc_rms is None else
           f"RMS {r.steer_osc_rms:.3f} of full torque, {r.steer_osc_share:.0%} of its energy")
    lines.append(f"  steering while engaged: max lateral jerk {_m(r.max_lat_jerk, '.1f', 'm/s^3')}, wheel rate RMS "
                 f"{_m(r.steer_rate_rms_deg_s, '.1f', 'deg/s')}; torque command above {OSC_HZ:g} Hz "
                 f"(oscillation): {osc}")
    st = r.steering
    if st is None:
        lines.append("  steering response (torqued): not in the route")
    else:
        when = "" if st.learned_t is None else f", fully learnt at {st.learned_t:.0f} s"
        lines.append(f"  steering response (torqued): {st.lat_accel_factor:.2f} m/s^2 per unit torque (carParams "
                     f"{st.car_lat_accel_factor:.2f}: x{st.lat_accel_factor / st.car_lat_accel_factor:.2f}), friction "
                     f"{st.friction:.2f} m/s^2; {st.source}, confidence {st.confidence:.0%}{when}")
    return lines


def _health_lines(r: DriveReport) -> list[str]:
    """Alerts, CPU, restarts, missed model frames, recording gaps, log problems."""
    lines: list[str] = []
    if r.alerts:
        lines.append("  alerts shown (times raised): " + "; ".join(
            f"{n} x{c} \"{r.alert_texts.get(n, '')}\"" for n, c in list(r.alerts.items())[:8]) +
            (f"; and {len(r.alerts) - 8} more kinds" if len(r.alerts) > 8 else ""))
    else:
        lines.append("  alerts shown: none")
    if r.cpu_total_cores is None:
        lines.append("  CPU per process: not available (no managerState in the route)")
    else:
        lines.append(f"  CPU (average cores over the drive's wall time, psutil via managerState; the manager itself "
                     f"and the roadpilot command not included): {r.cpu_total_cores:.2f} in all")
        lines.append("    " + ", ".join(f"{n} {c:.2f}" for n, c in r.cpu_cores.items()))
    lines.append("  processes restarted (they died): " + (", ".join(f"{n} x{c}" for n, c in r.restarts.items())
                                                         if r.restarts else "none"))
    if r.missed_model_frames is None:
        lines.append("  model frames: no camera frames in the drive (camerad did not run?)")
    elif r.modeld_frames_dropped is None:
        lines.append(f"  missed model frames: all {r.camera_frames} camera frames: no modelV2 in the route at all "
                     "(modeld did not run or never produced)")
    else:
        own = f"; modeld's own count: {r.modeld_frames_dropped} dropped, up to {r.modeld_max_drop_perc:.0f}%"
        lines.append(f"  missed model frames: {r.missed_model_frames} of {r.camera_frames} camera frames had no "
                     f"modelV2{own}")
    if r.recording_gaps:
        lines.append("  recording gaps (nothing recorded: loggerd down or the disk full; engagement unknown there): "
                     + ", ".join(f"{a:.1f}-{b:.1f} s" for a, b in r.recording_gaps))
    lines += [f"  log problem: {p}" for p in r.problems]
    return lines


def _text_lines(r: DriveReport) -> list[str]:
    return [*_headline(r), *_engagement_lines(r), *_safety_lines(r), *_steering_lines(r), *_health_lines(r)]


def _limits_words() -> str:
    return (f"no collision or lane departure, engaged >= {LIMITS['engaged_fraction']:.0%}, mean lateral error <= "
            f"{LIMITS['lat_err_mean_m']:g} m, time gap >= {LIMITS['min_time_gap_s']:g} s, no missed model frame, "
            f"steering oscillation <= {LIMITS['steer_osc_rms']:g} of full torque, lateral jerk <= "
            f"{LIMITS['max_lat_jerk']:g} m/s^3")


def _at(ts: list[float]) -> str:
    if not ts:
        return ""
    shown = ", ".join(f"{t:.1f}" for t in ts[:5])
    return f" (at {shown} s{f' and {len(ts) - 5} more' if len(ts) > 5 else ''})"
