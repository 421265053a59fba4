"""One simulated drive: a scenario's world, the ego vehicle's dynamics, the CAN-level car and the
scripted driver, advanced in 10 ms steps.

Deterministic: the state after step k depends only on (scenario, seed, driver config) and the CAN
frames handed to `step` at each step; nothing reads a clock. The car's CAN output of a step is packed
only when asked (`step(..., can=True)`), so in-process runs that need no bus (the driver's scenario
tests, training data) skip the packing.
"""

import json
import math
from dataclasses import asdict, dataclass, fields, replace

import numpy as np
from opendbc.car.can_definitions import CanData

from common.transformations.camera import CameraModel
from tools.sim.lib import dynamics
from tools.sim.lib.can_garbage import CanGarbage
from tools.sim.lib.driver import DriverConfig, DriverMode, Other, ScriptedDriver, Vehicle, View
from tools.sim.lib.radar import SimRadar, targets
from tools.sim.lib.scenarios import SCENARIOS, make_world
from tools.sim.lib.sim_car import DEFAULT_PLATFORM, PT_DBC, DriverControls, Motion, SimCar, sim_platform
from tools.sim.lib.traffic import Box
from tools.sim.lib.truth import SAMPLE_DISTANCES, DepartureJudge, Footprint, leads, line_offsets

DT = 0.01
DT_MS = 10
CAMERA_EVERY = 5          # steps: 20 Hz camera and simState


STEER_RANGES = (("steer_gain", 0.25, 4.0), ("steer_friction", 0.0, 0.5), ("steer_delay_s", 0.0, 0.5))
# the road camera: 0 for the field of view is the default camera's (comma2k19's, 65.2 deg across 1164 px)
CAMERA_RANGES = (("camera_fov", 0.0, 120.0), ("camera_k1", -0.3, 0.1), ("camera_shift_px", -80.0, 80.0))
VARIANT_OPTIONS = {"steer_gain": "steer_gain", "steer_friction": "steer_friction", "steer_delay": "steer_delay_s",
                   "camera_fov": "camera_fov", "camera_k1": "camera_k1", "camera_shift": "camera_shift_px"}


def variant(args) -> dict:
    """The SimConfig fields that `add_steer_args` and `add_camera_args` options set."""
    return {field: getattr(args, opt) for opt, field in VARIANT_OPTIONS.items() if hasattr(args, opt)}


def add_camera_args(ap) -> None:
    """The options of a road camera unlike the default one (`roadpilot sim`, the bridge, the seed sweep)."""
    ap.add_argument("--camera-fov", type=float, default=0.0, metavar="DEG",
                    help="the camera's horizontal field of view (30-120; default: comma2k19's camera, 65.2)")
    ap.add_argument("--camera-k1", type=float, default=0.0, metavar="K1",
                    help="its lens' radial distortion, OpenCV's k1 (-0.3-0.1; negative: barrel; default 0)")
    ap.add_argument("--camera-shift", type=float, default=0.0, metavar="PX",
                    help="its principal point this many pixels right of and below the centre (-80-80; default 0)")


def add_steer_args(ap) -> None:
    """The options of a car whose steering differs from its parameters (`roadpilot sim` and the bridge)."""
    ap.add_argument("--steer-gain", type=float, default=1.0, metavar="X",
                    help="the car's steering answers the EPS torque X times as much as its parameters say (0.25-4; "
                         "default 1): tyres, load or a rack unlike carParams' lateral acceleration per unit torque")
    ap.add_argument("--steer-friction", type=float, default=0.0, metavar="F",
                    help="steering friction, of full torque (0-0.5; default 0)")
    ap.add_argument("--steer-delay", type=float, default=0.0, metavar="S",
                    help="seconds the EPS acts later than the car's parameters say (0-0.5; default 0)")


@dataclass(frozen=True)
class SimConfig:
    """What to simulate and how; travels as JSON (ROADPILOT_SIM)."""
    scenario: str = "highway"
    seed: int = 0
    car: str = DEFAULT_PLATFORM   # which of sim_car.SIM_PLATFORMS (the opendbc platform name)
    driver: DriverMode = "manual"
    use_cruise: bool = False      # a manual driver that also turns the cruise on
    lockstep: bool = False
    minutes: float = 0.0          # of simulated time; 0: until stopped
    camera: bool = True
    record: str = ""              # mp4 path of what the camera saw; "" for none
    stack_wait_s: float = 20.0    # lockstep: how long the world waits for the stack's first answer
    can_garbage: float = 0.0      # fault tests: garbage frames per step on the car's bus (see can_garbage.py)
    # a car that differs from its parameters (what carParams and the controller assume): its steering answers the
    # EPS torque steer_gain times as much, the steering holds steer_friction (of full torque) before it moves, and
    # the EPS acts steer_delay_s later than the car's parameters say
    steer_gain: float = 1.0
    steer_friction: float = 0.0
    steer_delay_s: float = 0.0
    # the road camera the frames come from (camera_model()): every run says it to the stack through camerad
    camera_fov: float = 0.0
    camera_k1: float = 0.0
    camera_shift_px: float = 0.0

    def __post_init__(self):
        if self.scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.scenario!r}; known: {', '.join(SCENARIOS)}")
        sim_platform(self.car)
        if self.driver not in ("manual", "supervise"):
            raise ValueError(f"driver must be manual or supervise, got {self.driver!r}")
        if not (self.minutes >= 0 and math.isfinite(self.minutes)):
            raise ValueError(f"minutes must be >= 0, got {self.minutes}")
        if not (0 <= self.stack_wait_s < 3600):
            raise ValueError(f"stack_wait_s must be 0..3600, got {self.stack_wait_s}")
        if not 0 <= self.seed < 2 ** 32:
            raise ValueError(f"seed must be 0..2^32-1, got {self.seed}")
        if not (0 <= self.can_garbage <= 100):
            raise ValueError(f"can_garbage must be 0..100 frames per step, got {self.can_garbage}")
        for name, lo, hi in STEER_RANGES + CAMERA_RANGES:
            if not lo <= getattr(self, name) <= hi:
                raise ValueError(f"{name} must be {lo:g}..{hi:g}, got {getattr(self, name)}")
        if 0.0 < self.camera_fov < 30.0:
            raise ValueError(f"camera_fov must be 0 (the default camera) or 30..120, got {self.camera_fov}")

    def camera_model(self) -> CameraModel:
        """The road camera this run's frames come from (the default camera's size, square pixels, mounted as it is)."""
        base = CameraModel()
        cam = CameraModel.from_fov(base.width, base.height, self.camera_fov) if self.camera_fov else base
        return replace(cam, principal=(cam.cx + self.camera_shift_px, cam.cy + self.camera_shift_px),
                       dist=(self.camera_k1,) if self.camera_k1 else ())

    def describe_variant(self) -> str:
        """'' for the car and camera of the parameters; else what differs, for the first lines of a run."""
        out = []
        if (self.steer_gain, self.steer_friction, self.steer_delay_s) != (1.0, 0.0, 0.0):
            out.append(f"its steering differs from its parameters: torque x{self.steer_gain:g}, friction "
                       f"{self.steer_friction:g}, {self.steer_delay_s:g} s more delay")
        if (self.camera_fov, self.camera_k1, self.camera_shift_px) != (0.0, 0.0, 0.0):
            out.append(f"camera {self.camera_model().describe()}")
        return f" ({'; '.join(out)})" if out else ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "SimConfig":
        """Raises ValueError on anything that is not a valid config."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"sim config is not JSON: {e}") from None
        if not isinstance(raw, dict):
            raise ValueError("sim config must be a JSON object")
        known = {f.name: f.type for f in fields(cls)}
        bad = sorted(set(raw) - set(known))
        if bad:
            raise ValueError(f"unknown sim config keys {bad}; known: {sorted(known)}")
        try:
            return cls(**raw)
        except TypeError as e:
            raise ValueError(f"bad sim config: {e}") from None


@dataclass
class Tally:
    """Ground-truth events over a drive (counted per step; `first_*` in seconds)."""
    collision_steps: int = 0
    departure_steps: int = 0
    first_collision: float | None = None
    first_departure: float | None = None
    departure_kinds: dict[str, int] | None = None
    distance: float = 0.0
    engaged_steps: int = 0


class Simulation:
    def __init__(self, cfg: SimConfig):
        self.cfg = cfg
        self.world = make_world(cfg.scenario, cfg.seed, cfg.minutes * 60.0)
        self.road = self.world.road
        self.platform = sim_platform(cfg.car)
        self.params = replace(self.platform.vehicle, eps_friction=cfg.steer_friction)
        self.ego = Vehicle.of(self.platform)  # the car as its driver knows it
        x, y, yaw = self.world.ego_start_pose()
        self.state = dynamics.cruising_state(self.params, x, y, yaw, self.world.ego_speed,
                                             float(self.road.grade(self.world.ego_s)))
        self.car = SimCar(self.platform, steer_gain=cfg.steer_gain, steer_delay_steps=round(cfg.steer_delay_s / DT))
        self.radar = SimRadar(cfg.car, cfg.seed)
        self.garbage = CanGarbage(PT_DBC, cfg.seed, cfg.can_garbage) if cfg.can_garbage > 0 else None
        rng = np.random.default_rng([cfg.seed, 0xD71E])
        dcfg = DriverConfig(mode=cfg.driver, use_cruise=cfg.use_cruise)
        self.driver = ScriptedDriver(self.road, self.world.ego_lane, self.world.cruise_speed, rng, dcfg, self.ego)
        self.k = 0
        self.controls = DriverControls()
        self.prev_v = self.state.vx
        self.s, self.d = self.road.project(self.state.x, self.state.y)
        self.collision = False
        self.departure: str | None = None
        self.tally = Tally(departure_kinds={})
        self.judge = DepartureJudge(self.world.ego_lane)

    @property
    def t(self) -> float:
        return self.k * DT

    # --- the pieces' views of each other -------------------------------------------------------------------
    def motion(self) -> Motion:
        st = self.state
        return Motion(v=st.vx, a=st.accel, a_lat=st.lat_accel, yaw_rate=st.yaw_rate,
                      steer_deg=math.degrees(st.steer_angle), steer_rate_deg=math.degrees(st.steer_rate))

    def heading(self) -> float:
        return _wrap(self.state.yaw - self.road.centerline(self.s)[2])

    def view(self) -> View:
        m = self.motion()
        others = [Other(o.s, o.d, o.v, o.length, o.width, o.d_rate) for o in self.world.vehicles if o.direction > 0]
        return View(self.t, self.s, self.d, self.heading(), m.v, m.steer_deg, m.steer_rate_deg, others, self.car.status,
                    float(self.road.grade(self.s)))

    def footprint(self) -> Footprint:
        return Footprint(self.s, self.d, self.heading(), self.ego.length, self.ego.width)

    # --- one step --------------------------------------------------------------------------------------------
    def step(self, commands: list[CanData] = (), can: bool = True) -> list[CanData]:
        """Advances 10 ms: the car gets `commands` (frames on its bus), the driver acts, the vehicle and the
        traffic move. Returns the car's frames of this step (empty when `can` is False)."""
        t_next = (self.k + 1) * DT
        self.car.receive(commands, t_next)
        self.controls = self.driver.update(self.view())
        act = self.car.update(t_next, self.motion(), self.controls)
        inputs = dynamics.Inputs(eps_torque=act.eps_torque, driver_torque=act.driver_torque, accel_cmd=act.accel,
                                 accel_active=act.accel_active, gas=act.gas, brake=act.brake,
                                 grade=float(self.road.grade(self.s)))
        ego_box = Box(self.s, self.d, self.state.vx, self.ego.length, self.ego.width)
        self.state = dynamics.step(self.params, self.state, inputs, DT)
        self.world.step(DT, ego_box)
        self.k += 1
        self.tally.distance += 0.5 * (self.state.vx + self.prev_v) * DT
        self.prev_v = self.state.vx
        self.s, self.d = self.road.project(self.state.x, self.state.y)
        self._judge()
        if not can:
            return []
        frames = self.car.frames(self.k * DT_MS, DT_MS)
        if self.radar.due(self.k * DT_MS, DT_MS):
            st = self.state
            frames += self.radar.frames(targets(self.road, st.x, st.y, st.yaw, st.vx, self.ego.length,
                                                self.world.vehicles))
        return frames + self.garbage.frames() if self.garbage is not None else frames

    def _judge(self) -> None:
        st, ta = self.state, self.tally
        # the exact footprint test only for vehicles that are near in road coordinates (it is costly)
        near = any(abs(v.s - self.s) < 0.5 * (v.length + self.ego.length) + 2.0 and
                   abs(v.d - self.d) < 0.5 * (v.width + self.ego.length) for v in self.world.vehicles)
        self.collision = near and self.world.collision(st.x, st.y, st.yaw, self.ego.length, self.ego.width) is not None
        self.departure = self.judge.update(self.road, self.footprint(), self.controls.blinker)
        if self.collision:
            ta.collision_steps += 1
            ta.first_collision = self.t if ta.first_collision is None else ta.first_collision
        if self.departure is not None:
            ta.departure_steps += 1
            ta.first_departure = self.t if ta.first_departure is None else ta.first_departure
            ta.departure_kinds[self.departure] = ta.departure_kinds.get(self.departure, 0) + 1
        ta.engaged_steps += int(self.car.status.engaged)

    # --- ground truth ----------------------------------------------------------------------------------------
    def fill_sim_state(self, ss) -> None:
        """Fills a simState builder with this step's ground truth."""
        st, road, cfg = self.state, self.road, self.cfg
        ss.t = self.t
        ss.scenario, ss.seed = cfg.scenario, cfg.seed
        ss.x, ss.y, ss.yaw = st.x, st.y, st.yaw
        ss.vEgo, ss.aEgo, ss.yawRate = st.vx, st.accel, st.yaw_rate
        ss.steeringAngleDeg = self.motion().steer_deg
        lane = road.lane_at(self.d)
        ss.laneIndex = -128 if lane is None else lane
        ss.laneWidth = road.lane_width
        if lane is not None:
            ss.laneCenterOffset = self.d - road.lane_center_offset(lane)
            ss.leftLine = line_offsets(road, st.x, st.y, st.yaw, self.s, -lane * road.lane_width)
            ss.rightLine = line_offsets(road, st.x, st.y, st.yaw, self.s, -(lane + 1) * road.lane_width)
        ss.roadCurvature = road.curvature(self.s)
        ss.sampleDistances = list(SAMPLE_DISTANCES)
        found = leads(road, self.footprint(), self.world.vehicles)
        out = ss.init("leads", len(found))
        for dst, src in zip(out, found, strict=True):
            for k, v in src.items():
                setattr(dst, k, v)
        ss.collision = self.collision
        ss.laneDeparture = self.departure is not None
        takeovers = self.driver.takeovers
        ss.takeovers = len(takeovers)
        if takeovers:
            ss.lastTakeoverT, ss.lastTakeover = takeovers[-1]


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi
