"""Named, parameterised driving scenarios and the World they build.

SCENARIOS is the one table of scenarios. make_world(name, seed) builds the road and the traffic from it;
the seed picks the road (curves, lane width, grades), jitters the scripted vehicles' gaps, speeds and
timings a little and places the background traffic. Same name and seed give an identical world, and
`World.step` evolves it identically (see traffic.py).

Lanes in VehicleSpec are relative to the ego's lane: +1 is one lane to the right, -1 one to the left.
Gaps are centre to centre along the road from the ego's start, negative behind it.
"""

import math
from dataclasses import dataclass, field, replace

import numpy as np

from tools.sim.lib.road import Road
from tools.sim.lib.traffic import Box, LaneChange, Phase, Vehicle, step_vehicles

EGO_START_S = 60.0  # m along the road: a straight stretch (every road starts with >= 200 m of straight)

# name: (length, width, height) in m, and how often background traffic picks it
VEHICLE_KINDS: dict[str, tuple[tuple[float, float, float], float]] = {
    "car": ((4.6, 1.82, 1.45), 0.5),
    "suv": ((4.8, 1.9, 1.75), 0.3),
    "van": ((5.3, 2.0, 2.2), 0.1),
    "truck": ((11.0, 2.5, 3.5), 0.1),
}
# BGR body colours seen on roads: white, silver, grey, black, dark blue, red, dark green, beige, blue
COLOURS = ((235, 235, 232), (185, 188, 190), (110, 112, 115), (28, 28, 30), (90, 45, 25), (35, 35, 170),
           (45, 80, 35), (150, 175, 190), (160, 90, 40))


@dataclass(frozen=True)
class VehicleSpec:
    """A scripted vehicle. lane: relative to the ego's lane; gap: m ahead of the ego's start (centre to
    centre); v: initial speed (None: the ego's); lane changes name relative lanes too."""
    lane: int
    gap: float
    v: float | None = None
    profile: tuple[Phase, ...] = ()
    lane_changes: tuple[LaneChange, ...] = ()
    kind: str = "car"


@dataclass(frozen=True)
class ScenarioConfig:
    description: str
    road_kind: str
    num_lanes: int
    ego_lane: int                 # absolute: 0 is the leftmost lane of our direction
    ego_speed: float              # m/s at the start
    cruise_speed: float           # m/s, what a driver would set the cruise to
    duration: float               # s, how long the scenario is meant to run
    vehicles: tuple[VehicleSpec, ...] = ()
    background: int = 0           # random vehicles in the other lanes of our direction
    oncoming: int = 0             # vehicles in the oncoming lane (two-way roads)
    jitter: float = 0.08          # relative seed jitter of gaps, speeds and phase times


def _stop_and_go() -> tuple[Phase, ...]:
    rows = ((8, 0.0, 2.0), (16, 9.0, 1.2), (30, 2.0, 1.5), (38, 13.0, 1.2), (55, 0.0, 2.5), (66, 11.0, 1.5),
            (82, 0.0, 2.0), (92, 8.0, 1.0), (105, 14.0, 1.0))
    return tuple(Phase(t, v, a) for t, v, a in rows)


SCENARIOS: dict[str, ScenarioConfig] = {
    "straight": ScenarioConfig("empty straight road, no traffic", "straight", 2, 1, 25.0, 25.0, 60.0),
    "highway": ScenarioConfig(
        "3-lane highway, a lead that changes speed a little, traffic in the other lanes", "highway", 3, 1, 25.0,
        29.0, 120.0, (VehicleSpec(0, 70.0, 26.0, (Phase(30, 23.0, 1.0), Phase(60, 27.0, 1.0), Phase(90, 25.0))),),
        background=8),
    "curvy": ScenarioConfig("curvy road (radius down to 150 m), light traffic", "curvy", 2, 1, 20.0, 24.0, 120.0,
                            background=3),
    "suburban": ScenarioConfig(
        "two-way suburban road (radius down to 50 m), a slow lead, oncoming traffic", "suburban", 1, 0, 12.0, 14.0,
        120.0, (VehicleSpec(0, 50.0, 13.0, (Phase(40, 8.0, 1.0), Phase(55, 13.0, 1.0))),), oncoming=10),
    "stop_and_go": ScenarioConfig(
        "a lead in stop-and-go traffic: stops, creeps, accelerates", "highway", 3, 1, 12.0, 25.0, 115.0,
        (VehicleSpec(0, 30.0, 12.0, _stop_and_go()),), background=4),
    "lead_brake": ScenarioConfig(
        "the lead brakes hard (6 m/s²) to a stop, then drives on", "highway", 2, 1, 25.0, 25.0, 45.0,
        (VehicleSpec(0, 45.0, 25.0, (Phase(15, 0.0, 6.0), Phase(28, 20.0, 2.0))),)),
    "cut_in": ScenarioConfig(
        "a faster car from the right lane cuts in close ahead, then slows", "highway", 2, 0, 25.0, 25.0, 45.0,
        (VehicleSpec(1, -5.0, 27.0, (Phase(13, 22.0, 1.0),), (LaneChange(10, 0, 3.0),)),
         VehicleSpec(0, 130.0, 25.0))),
    "stopped_car": ScenarioConfig(
        "a car stands still in the ego's lane 300 m ahead", "highway", 2, 1, 25.0, 25.0, 40.0,
        (VehicleSpec(0, 300.0, 0.0),), background=2),
    "mixed": ScenarioConfig(
        "everything: a lead that slows and brakes, a cut-in from the left, busy other lanes", "highway", 3, 1, 25.0,
        28.0, 180.0,
        (VehicleSpec(0, 60.0, 26.0, (Phase(30, 18.0, 1.5), Phase(45, 26.0, 1.0), Phase(100, 5.0, 4.0),
                                     Phase(115, 24.0, 1.5))),
         VehicleSpec(-1, -20.0, 29.0, (Phase(70, 24.0, 1.0),), (LaneChange(62, 0, 4.0),), kind="suv")),
        background=10),
}


@dataclass
class World:
    """A scenario's road and traffic at time t. Ego start: lane ego_lane at arc length ego_s, speed ego_speed."""
    name: str
    seed: int
    config: ScenarioConfig
    road: Road
    vehicles: list[Vehicle]
    ego_lane: int
    ego_s: float
    ego_speed: float
    cruise_speed: float
    duration: float
    t: float = 0.0
    steps: int = field(default=0)

    def step(self, dt: float, ego: Box | None = None) -> None:
        """Advances the traffic by dt. Pass the ego's box so vehicles behind it keep their distance."""
        if not (dt > 0.0 and math.isfinite(dt)):
            raise ValueError(f"dt must be positive and finite, got {dt}")
        step_vehicles(self.vehicles, self.road, self.t, dt, ego)
        self.steps += 1
        self.t += dt

    def ego_start_pose(self) -> tuple[float, float, float]:
        """World (x, y, yaw) of the ego's start: the centre of its lane."""
        return self.road.position(self.ego_s, self.road.lane_center_offset(self.ego_lane))

    def initial_ego_state(self, params=None):
        """A dynamics VehicleState at the ego's start, cruising at ego_speed along its lane."""
        from tools.sim.lib.dynamics import VehicleParams, cruising_state
        x, y, yaw = self.ego_start_pose()
        return cruising_state(params or VehicleParams(), x, y, yaw, self.ego_speed, self.road.grade(self.ego_s))

    def lead(self, s: float, d: float, width: float = 1.9, length: float = 4.7,
             max_dist: float = 200.0) -> tuple[Vehicle, float] | None:
        """The nearest same-direction vehicle ahead of an ego at (s, d) overlapping its path, and the
        bumper-to-bumper gap to it (m)."""
        best = None
        for veh in self.vehicles:
            if veh.direction != 1 or abs(veh.d - d) >= 0.5 * (veh.width + width):
                continue
            gap = veh.s - s - 0.5 * (veh.length + length)
            if veh.s > s and gap < max_dist and (best is None or gap < best[1]):
                best = (veh, gap)
        return best

    def collision(self, x: float, y: float, yaw: float, length: float = 4.7, width: float = 1.9) -> Vehicle | None:
        """The first vehicle whose footprint overlaps an ego footprint centred at (x, y) heading yaw."""
        for veh in self.vehicles:
            vx, vy, _, vyaw = veh.pose(self.road)
            if (vx - x) ** 2 + (vy - y) ** 2 < 400.0 and boxes_overlap((x, y, yaw, length, width),
                                                                        (vx, vy, vyaw, veh.length, veh.width)):
                return veh
        return None

    def snapshot(self) -> tuple:
        """The whole evolving state, for exact determinism checks."""
        return (self.t, tuple(v.state() for v in self.vehicles))


def boxes_overlap(a: tuple[float, float, float, float, float], b: tuple[float, float, float, float, float]) -> bool:
    """Separating-axis test of two oriented rectangles (x, y, yaw, length, width)."""
    corners = []
    for x, y, yaw, length, width in (a, b):
        c, s = math.cos(yaw), math.sin(yaw)
        hl, hw = 0.5 * length, 0.5 * width
        corners.append([(x + c * u - s * w, y + s * u + c * w)
                        for u, w in ((hl, hw), (hl, -hw), (-hl, -hw), (-hl, hw))])
    for _, _, yaw, _, _ in (a, b):
        for ax, ay in ((math.cos(yaw), math.sin(yaw)), (-math.sin(yaw), math.cos(yaw))):
            pa = [px * ax + py * ay for px, py in corners[0]]
            pb = [px * ax + py * ay for px, py in corners[1]]
            if max(pa) < min(pb) or max(pb) < min(pa):
                return False
    return True


def _kind(rng: np.random.Generator) -> str:
    names = list(VEHICLE_KINDS)
    p = np.array([VEHICLE_KINDS[n][1] for n in names])
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _make_vehicle(vid: int, kind: str, rng: np.random.Generator, **kw) -> Vehicle:
    (length, width, height), _ = VEHICLE_KINDS[kind]
    colour = COLOURS[int(rng.integers(len(COLOURS)))]
    return Vehicle(id=vid, length=length, width=width, height=height, colour=colour, **kw)


def _scripted(cfg: ScenarioConfig, road: Road, rng: np.random.Generator) -> list[Vehicle]:
    out = []
    jit = lambda x: float(x * (1.0 + cfg.jitter * rng.uniform(-1.0, 1.0)))
    for i, spec in enumerate(cfg.vehicles):
        lane = cfg.ego_lane + spec.lane
        v = cfg.ego_speed if spec.v is None else spec.v
        profile = tuple(replace(p, t=jit(p.t), v=jit(p.v)) for p in spec.profile)
        changes = tuple(replace(c, t=jit(c.t), lane=cfg.ego_lane + c.lane) for c in spec.lane_changes)
        out.append(_make_vehicle(i, spec.kind, rng, s=EGO_START_S + jit(spec.gap), d=road.lane_center_offset(lane),
                                 lane=lane, v=jit(v), profile=profile, lane_changes=changes))
    return out


def _background(cfg: ScenarioConfig, road: Road, rng: np.random.Generator, first_id: int) -> list[Vehicle]:
    """Vehicles in the ego's direction but other lanes (left lanes a little faster), and oncoming ones."""
    out: list[Vehicle] = []
    lanes = [lane for lane in range(road.num_lanes) if lane != cfg.ego_lane]
    taken: dict[int, list[float]] = {}
    for _ in range(cfg.background if lanes else 0):
        lane = lanes[int(rng.integers(len(lanes)))]
        for _try in range(20):  # keep 35 m between vehicles of one lane
            s = EGO_START_S + float(rng.uniform(-60.0, 500.0))
            if all(abs(s - o) > 35.0 for o in taken.get(lane, [])):
                break
        else:
            continue
        taken.setdefault(lane, []).append(s)
        v = cfg.cruise_speed * (1.0 + 0.05 * (cfg.ego_lane - lane)) + float(rng.uniform(-2.0, 2.0))
        out.append(_make_vehicle(first_id + len(out), _kind(rng), rng, s=s, d=road.lane_center_offset(lane),
                                 lane=lane, v=max(v, 3.0)))
    spacing = road.length / max(cfg.oncoming, 1)
    for i in range(cfg.oncoming if road.oncoming_lanes else 0):
        s = EGO_START_S + 150.0 + i * spacing + float(rng.uniform(0.0, 0.5 * spacing))
        out.append(_make_vehicle(first_id + len(out), _kind(rng), rng, s=s, d=road.lane_center_offset(-1), lane=-1,
                                 v=cfg.cruise_speed + float(rng.uniform(-2.0, 2.0)), direction=-1))
    return out


def make_world(name: str, seed: int, seconds: float = 0.0) -> World:
    """Builds scenario `name` for `seed`: the same pair always gives the same world. The road is long enough for
    the scenario's duration, or for `seconds` of driving when that is longer (a soak drives for an hour)."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    cfg = SCENARIOS[name]
    top_speed = max([cfg.cruise_speed, cfg.ego_speed] + [s.v or 0.0 for s in cfg.vehicles]) * (1.0 + cfg.jitter)
    road = Road(seed, cfg.road_kind, length=EGO_START_S + max(cfg.duration, seconds) * top_speed * 1.2 + 800.0,
                num_lanes=cfg.num_lanes)
    rng = np.random.default_rng([int(seed), 0x7AF])
    vehicles = _scripted(cfg, road, rng)
    vehicles += _background(cfg, road, rng, len(vehicles))
    return World(name, int(seed), cfg, road, vehicles, cfg.ego_lane, EGO_START_S, cfg.ego_speed,
                 cfg.cruise_speed, cfg.duration)
