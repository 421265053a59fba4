"""Traffic: vehicles that follow lanes with their own speed profiles, change lanes on a schedule and keep
their distance to whatever drives ahead of them (the ego included, so nobody rear-ends it).

A vehicle lives in road coordinates: s (arc length of its centre) and d (lateral offset of its centre,
left positive), moving along +s (direction 1) or, in the oncoming lane, along -s (direction -1). Its
behaviour is data: a speed profile (Phase rows: from time t aim for speed v using at most `accel`) and
lane changes (LaneChange rows). Behaviours built from these: cruise (no phases), slow down, brake hard to
a stop, stop-and-go, cut-in from the next lane, a stopped car (v = 0, no phases). A lane change that is due waits
until the target lane has room (MERGE_GAP_M to whatever is in it, the ego included), as a driver checks the mirror:
a seed's jitter once had a cut-in start while the car was still beside the ego, and it drove into the ego's side.

Stepping is synchronous (every vehicle sees the others' state from the start of the step), uses only
float arithmetic on the vehicles' own state and is free of randomness, so a world evolves identically
every time it is stepped with the same dt sequence (and the same ego boxes, when an ego is passed).
"""

import math
from dataclasses import dataclass, field

from tools.sim.lib.road import Road

JERK_MAX = 12.0         # m/s³, how fast a driver goes from cruise to full braking
SPEED_TAU = 0.6         # s, approach to a target speed in its last metres per second
FOLLOW_TIME = 1.3       # s, desired time gap to the vehicle ahead (IDM's T)
FOLLOW_MIN_GAP = 3.0    # m, standstill gap (IDM's s0)
FOLLOW_ACCEL = 1.5      # m/s² (IDM's a)
FOLLOW_DECEL = 3.0      # m/s², comfortable braking (IDM's b)
EMERGENCY_DECEL = 9.0   # m/s², when the gap is gone
LOOKAHEAD = 150.0       # m, vehicles further ahead do not influence a follower
IDM_ROOT = 2.0 * math.sqrt(FOLLOW_ACCEL * FOLLOW_DECEL)
MERGE_GAP_M = 5.0       # m, bumper to bumper, a lane change needs ahead of and behind it in the target lane


@dataclass(frozen=True)
class Phase:
    """From time t (s) on, aim for speed v (m/s), accelerating or braking at most `accel` (m/s²)."""
    t: float
    v: float
    accel: float = 1.5


@dataclass(frozen=True)
class LaneChange:
    """At time t (s), move to `lane` (absolute index) over `duration` seconds."""
    t: float
    lane: int
    duration: float = 3.0


@dataclass(frozen=True)
class Box:
    """Something that takes up road space and may lead others: centre (s, d), speed, footprint."""
    s: float
    d: float
    v: float
    length: float = 4.7
    width: float = 1.9
    direction: int = 1


@dataclass
class Vehicle:
    """One traffic vehicle. Colour is BGR (0..255)."""
    id: int
    s: float
    d: float
    lane: int
    v: float
    a: float = 0.0
    length: float = 4.6
    width: float = 1.85
    height: float = 1.5
    colour: tuple[int, int, int] = (170, 170, 170)
    profile: tuple[Phase, ...] = ()
    lane_changes: tuple[LaneChange, ...] = ()
    direction: int = 1
    d_rate: float = 0.0                         # m/s, lateral speed during a lane change
    cruise_v: float = field(default=-1.0)       # speed aimed for before the first phase (default: initial v)
    _lc_start: tuple[float, float, float, float, int] | None = field(default=None, repr=False)
    _lc_done: int = field(default=0, repr=False)

    def __post_init__(self):
        if self.cruise_v < 0.0:
            self.cruise_v = self.v

    @property
    def brake_lights(self) -> bool:
        return self.a < -0.4 or self.v < 0.2

    def box(self) -> Box:
        return Box(self.s, self.d, self.v, self.length, self.width, self.direction)

    def target_speed(self, t: float) -> tuple[float, float]:
        """(speed, accel limit) the profile asks for at time t."""
        v, accel = self.cruise_v, 2.0
        for ph in self.profile:
            if ph.t <= t:
                v, accel = ph.v, ph.accel
        return v, accel

    def pose(self, road: Road) -> tuple[float, float, float, float]:
        """World (x, y, z, yaw) of the vehicle's centre on the ground."""
        x, y, yaw = road.position(self.s, self.d)
        heading = math.atan2(self.d_rate, max(self.v, 0.5))
        if self.direction < 0:
            yaw, heading = yaw + math.pi, -heading
        return x, y, road.elevation(self.s), yaw + heading

    def state(self) -> tuple:
        """Everything that evolves, for exact comparisons."""
        return (self.id, self.s, self.d, self.lane, self.v, self.a, self.d_rate)


def _overlaps_laterally(a_d: float, a_w: float, b: Box, margin: float = 0.3) -> bool:
    return abs(a_d - b.d) < 0.5 * (a_w + b.width) + margin


def follow_accel(veh: Vehicle, others: list[Box]) -> float:
    """IDM's interaction term against the nearest box ahead in the vehicle's path (or +inf if none)."""
    best_gap, lead_v = LOOKAHEAD, None
    for b in others:
        if b.direction != veh.direction or not _overlaps_laterally(veh.d, veh.width, b):
            continue
        ahead = (b.s - veh.s) * veh.direction
        gap = ahead - 0.5 * (b.length + veh.length)
        if ahead > 0.0 and gap < best_gap:
            best_gap, lead_v = gap, b.v
    if lead_v is None:
        return math.inf
    if best_gap <= 0.1:
        return -EMERGENCY_DECEL
    dv = veh.v - lead_v
    s_star = FOLLOW_MIN_GAP + max(0.0, veh.v * FOLLOW_TIME + veh.v * dv / IDM_ROOT)
    return max(-EMERGENCY_DECEL, FOLLOW_ACCEL * (1.0 - (s_star / best_gap) ** 2))


def profile_accel(veh: Vehicle, t: float) -> float:
    v_target, limit = veh.target_speed(t)
    dv = v_target - veh.v
    if v_target <= 0.0 and veh.v > 0.0:   # a stop is a stop: brake on (at least 1 m/s²) until standstill
        return -min(limit, max(veh.v / SPEED_TAU, 1.0))
    return math.copysign(min(limit, abs(dv) / SPEED_TAU), dv)


def step_vehicles(vehicles: list[Vehicle], road: Road, t: float, dt: float, ego: Box | None = None) -> None:
    """Advances every vehicle by dt from time t, in place. All accelerations come from the state at t."""
    boxes = [v.box() for v in vehicles]
    everyone = boxes + ([ego] if ego is not None else [])
    accels = []
    for i, veh in enumerate(vehicles):
        # the ego leads only vehicles behind it: traffic ahead does not react to it (scenarios stay scripted)
        others = boxes[:i] + boxes[i + 1:]
        if ego is not None and (ego.s - veh.s) * veh.direction > 0.0:
            others.append(ego)
        want = min(profile_accel(veh, t), follow_accel(veh, others))
        accels.append(min(veh.a + JERK_MAX * dt, max(veh.a - JERK_MAX * dt, want)))
    for i, (veh, a) in enumerate(zip(vehicles, accels, strict=True)):
        v_new = veh.v + a * dt
        if v_new <= 0.0:                # stopping: stands still instead of reversing
            v_new = 0.0
            if veh.v <= 0.0:            # already stopped: no braking left to show (keeps a from winding up)
                a = max(a, 0.0)
        veh.s += veh.direction * 0.5 * (veh.v + v_new) * dt
        veh.v, veh.a = v_new, a
        _lane_change(veh, road, t + dt, everyone[:i] + everyone[i + 1:])


def _room(veh: Vehicle, d: float, others: list[Box]) -> bool:
    """Whether a vehicle could move to lateral offset d now: MERGE_GAP_M clear ahead of and behind it there."""
    for b in others:
        if b.direction == veh.direction and _overlaps_laterally(d, veh.width, b, margin=0.0):
            gap = abs(b.s - veh.s) - 0.5 * (b.length + veh.length)
            if gap < MERGE_GAP_M:
                return False
    return True


def _lane_change(veh: Vehicle, road: Road, t: float, others: list[Box]) -> None:
    if veh._lc_start is None and veh._lc_done < len(veh.lane_changes) and veh.lane_changes[veh._lc_done].t <= t:
        lc = veh.lane_changes[veh._lc_done]
        if not _room(veh, road.lane_center_offset(lc.lane), others):
            return  # due, but the lane is taken beside us: again next step
        veh._lc_start = (t, veh.d, road.lane_center_offset(lc.lane), lc.duration, lc.lane)
    if veh._lc_start is None:
        return
    t0, d0, d1, duration, lane = veh._lc_start
    p = min(1.0, (t - t0) / duration)
    # a cosine blend: zero lateral speed at both ends, like a driver's smooth lane change
    veh.d = d0 + (d1 - d0) * 0.5 * (1.0 - math.cos(math.pi * p))
    veh.d_rate = (d1 - d0) * 0.5 * math.pi / duration * math.sin(math.pi * p) if p < 1.0 else 0.0
    if p >= 0.5:
        veh.lane = lane
    if p >= 1.0:
        veh._lc_start, veh._lc_done = None, veh._lc_done + 1
