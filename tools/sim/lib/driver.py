"""A scripted human driver: keeps its lane with a little noise, picks a speed for the road, the curves and
the car ahead, changes lanes now and then (blinker first, only into a free gap), and works the cruise
stalk. It drives through the car's controls only: torque on the steering wheel, the two pedals, the
stalk buttons and the blinker (`sim_car.DriverControls`).

Two roles (`DriverConfig.mode`):
  manual     drives by hand all the time (training data, manual runs). With `use_cruise` it also turns
             the cruise on and presses SET at a steady speed, as a driver trying the assistant would.
  supervise  drives by hand until the car's cruise engages, then takes hands and feet off and lets the
             driving assistant drive; it takes over (brakes, which disengages, or steers) when the car
             drifts out of its lane or closes in on something too fast.
Deterministic: all randomness comes from a numpy Generator seeded by the caller.
"""

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from tools.sim.lib.sim_car import MIN_ACC_SPEED, CarStatus, DriverControls, SimPlatform

DriverMode = Literal["manual", "supervise"]


@dataclass(frozen=True)
class DriverConfig:
    mode: DriverMode = "manual"
    use_cruise: bool = False
    lane_changes: bool = True
    speed_factor: float = 1.0          # x the scenario's speed
    lateral_noise: float = 0.15        # m, std of the slow wander around the lane centre
    max_lat_accel: float = 2.0         # m/s^2 the driver accepts in curves
    time_gap: float = 1.6              # s behind a lead
    min_gap: float = 4.0               # m at standstill
    comfort_decel: float = 2.0         # m/s^2
    lane_change_s: float = 5.0         # duration of a lane change
    lane_change_every: tuple[float, float] = (25.0, 60.0)  # s between lane change wishes
    steer_kp: float = 0.04             # Nm per degree of steering wheel error
    steer_kd: float = 0.002            # Nm per deg/s
    max_torque: float = 8.0            # Nm a driver puts on the wheel
    overtake_below: float = 0.7        # changes lanes (when free) behind a lead slower than this x its speed


@dataclass(frozen=True)
class Other:
    """Another vehicle, in road coordinates (what the driver sees out of the window)."""
    s: float
    d: float
    v: float
    length: float = 4.6
    width: float = 1.85
    d_rate: float = 0.0                # m/s, lateral (a car changing lanes)


@dataclass(frozen=True)
class Vehicle:
    """What the driver knows of the own car by feel: its size, how the steering answers and how hard
    it must press the pedals (a driver used to the car; see dynamics.VehicleParams for the meanings)."""
    length: float = 4.6
    width: float = 1.85
    wheelbase: float = 2.65
    steer_ratio: float = 16.88
    understeer: float = 0.0027         # rad (road wheel) per m/s^2 of lateral acceleration
    eps_lat_accel_full: float = 2.09
    eps_center_angle: float = 3.0
    driver_torque_full: float = 3.0
    mass: float = 1792.0
    drag: float = 0.53                 # N per (m/s)^2
    rolling: float = 0.011
    drive_accel_max: float = 3.5
    drive_power_max: float = 130e3
    brake_decel_max: float = 9.0
    cruise_min_speed: float = MIN_ACC_SPEED  # m/s the cruise engages at (0 with stop-and-go)

    @classmethod
    def of(cls, car: SimPlatform) -> "Vehicle":
        p = car.vehicle
        return cls(car.length, car.width, p.wheelbase, p.steer_ratio, p.understeer_gradient, p.eps_lat_accel_full,
                   p.eps_center_angle, p.driver_torque_full, p.mass, 0.5 * p.air_density * p.drag_area,
                   p.rolling_resistance, p.drive_accel_max, p.drive_power_max, p.brake_decel_max, car.min_engage_speed)


REACT_S = 0.8     # s ahead a supervising driver judges the car's drift over
DRIFT_M = 0.45    # m off the lane centre, now or in REACT_S, at which it takes over
SETTLED_M = 0.3   # m off its own target, now and in REACT_S, within which it engages
ENGAGE_STEER_DEG = 15.0  # and with the steering wheel within this of centre


@dataclass
class View:
    """One step's view: pose in road coordinates and the car's state."""
    t: float
    s: float
    d: float
    heading: float                     # rad, relative to the road at s
    v: float
    steer_deg: float
    steer_rate_deg: float
    others: list[Other]
    car: CarStatus
    grade: float = 0.0


class ScriptedDriver:
    def __init__(self, road, lane: int, v_target: float, rng: np.random.Generator,
                 cfg: DriverConfig = DriverConfig(), vehicle: Vehicle = Vehicle()):
        self.road, self.cfg, self.veh, self.rng = road, cfg, vehicle, rng
        self.lane = lane
        self.v_target = v_target * cfg.speed_factor
        self.wander = 0.0
        self.change: tuple[float, int, int] | None = None  # (start t, from lane, to lane)
        self.next_change_t = self._next_change(0.0)
        self.blinker = 0
        self.button: tuple[str, float] | None = None       # (button, release t)
        self.last_press_t = -math.inf
        self.hands_off = False
        self.took_over = 0
        self.took_over_t = -math.inf
        self.takeovers: list[tuple[float, str]] = []  # (t, why): the supervising driver's reasons, for the record
        self._lead_cache: tuple[View | None, Other | None] = (None, None)

    def _next_change(self, t: float) -> float:
        return t + float(self.rng.uniform(*self.cfg.lane_change_every))

    # --- lateral ---------------------------------------------------------------------------------------
    def target_offset(self, t: float) -> float:
        """The lateral offset (from the reference line) the driver aims for now."""
        road = self.road
        d = road.lane_center_offset(self.lane) + self.wander
        if self.change is not None:
            t0, a, b = self.change
            x = min(max((t - t0) / self.cfg.lane_change_s, 0.0), 1.0)
            w = 0.5 - 0.5 * math.cos(math.pi * x)
            d = (1 - w) * road.lane_center_offset(a) + w * road.lane_center_offset(b)
        return d

    def steer(self, view: View) -> float:
        """Wheel torque: pure pursuit to a preview point on the target path gives the wheel angle to hold;
        the torque that angle needs (known by feel) plus a correction towards it."""
        road, veh, v = self.road, self.veh, view.v
        look = max(8.0, 1.1 * v)
        d_err = self.target_offset(view.t + 0.5 * look / max(v, 1.0)) - view.d
        k_road = road.lane_curvature(view.s + 0.5 * look, view.d)
        alpha = math.atan2(d_err, look) - view.heading  # to the preview point, in the car's frame
        kappa = 2.0 * math.sin(alpha) / look + k_road
        delta = math.atan(kappa * veh.wheelbase) + veh.understeer * kappa * v * v
        target = delta * veh.steer_ratio  # steering wheel, rad
        a_ss = v * v * delta / max(veh.wheelbase + veh.understeer * v * v, 0.1 * veh.wheelbase)
        hold = veh.driver_torque_full * (a_ss / veh.eps_lat_accel_full + target / veh.eps_center_angle)
        torque = hold + self.cfg.steer_kp * (math.degrees(target) - view.steer_deg) \
            - self.cfg.steer_kd * view.steer_rate_deg
        return float(np.clip(torque, -self.cfg.max_torque, self.cfg.max_torque))

    def _plan_lane_change(self, view: View) -> None:
        road, cfg, t = self.road, self.cfg, view.t
        if self.change is not None:
            if t - self.change[0] >= cfg.lane_change_s:
                self.lane, self.change, self.blinker = self.change[2], None, 0
                self.next_change_t = self._next_change(t)
            return
        # a supervising driver leaves the driving, lanes included, to the assistant: it only takes over when it must
        # (an overtake before engaging would also drive it away from the very lead a scenario is about)
        if not cfg.lane_changes or road.num_lanes < 2 or self.hands_off or cfg.mode == "supervise":
            return
        lead = self.lead(view)
        slow_lead = lead is not None and lead.s - view.s < 120.0 and lead.v < cfg.overtake_below * self.v_target
        if t < self.next_change_t and not slow_lead:
            return
        options = [ln for ln in (self.lane - 1, self.lane + 1) if 0 <= ln < road.num_lanes]
        target = options[int(self.rng.integers(len(options)))]
        if self._gap_free(view, target) and abs(road.curvature(view.s)) < 1 / 400:
            self.blinker = 1 if target < self.lane else -1  # lane 0 is the leftmost
            self.change = (t + 1.5, self.lane, target)        # blinker 1.5 s before moving
        else:
            self.next_change_t = t + 3.0

    def _gap_free(self, view: View, lane: int) -> bool:
        dl = self.road.lane_center_offset(lane)
        for o in view.others:
            if abs(o.d - dl) < self.road.lane_width * 0.75:
                ds = o.s - view.s
                closing_behind = (view.v - o.v) * -4.0     # a faster car behind closes in during the change
                if -25.0 + min(closing_behind, 0.0) < ds < 30.0 + max((view.v - o.v) * 5.0, 0.0):
                    return False
        return True

    # --- longitudinal ----------------------------------------------------------------------------------
    def lead(self, view: View) -> Other | None:
        """The nearest vehicle ahead that overlaps the path the driver is on or moving to."""
        if self._lead_cache[0] is not view:
            self._lead_cache = (view, self._find_lead(view))
        return self._lead_cache[1]

    def _find_lead(self, view: View) -> Other | None:
        half = self.veh.width / 2 + 0.3
        lanes = [view.d, self.target_offset(view.t + 2.0)]
        best = None
        for o in view.others:
            if o.s <= view.s:
                continue
            seen_at = (o.d, o.d + o.d_rate * 1.5)  # where it is, and where it is heading (a cut-in)
            if any(abs(od - d) < half + o.width / 2 for d in lanes for od in seen_at):
                if best is None or o.s < best.s:
                    best = o
        return best

    def desired_accel(self, view: View) -> float:
        cfg, v = self.cfg, view.v
        # curve speed: the tightest curvature in the next few seconds of road
        horizon = np.linspace(view.s, view.s + max(40.0, 4.0 * v), 12)
        k_max = float(np.max(np.abs(self.road.curvature_array(horizon))))
        v0 = min(self.v_target, math.sqrt(cfg.max_lat_accel / max(k_max, 1e-6)))
        a_max, b = 1.5, cfg.comfort_decel
        free = a_max * (1.0 - (v / max(v0, 0.1)) ** 4)
        lead = self.lead(view)
        if lead is None:
            return free
        gap = lead.s - view.s - (lead.length + self.veh.length) / 2
        s_star = cfg.min_gap + v * cfg.time_gap + v * (v - lead.v) / (2 * math.sqrt(a_max * b))
        return a_max * (1.0 - (v / max(v0, 0.1)) ** 4 - (max(s_star, 0.0) / max(gap, 0.1)) ** 2)

    def pedals(self, a: float, view: View) -> tuple[float, float]:
        """(gas, brake) for acceleration a: the force it takes against drag, rolling and the hill."""
        veh, v = self.veh, view.v
        force = veh.mass * (a + 9.81 * (veh.rolling + view.grade)) + veh.drag * v * v
        if force >= 0.0:
            drive_max = min(veh.mass * veh.drive_accel_max, veh.drive_power_max / max(v, 1.0))
            return min(force / drive_max, 1.0), 0.0
        if a > -0.4:  # lift off: the car slows by itself
            return 0.0, 0.0
        return 0.0, min(-force / (veh.mass * veh.brake_decel_max), 1.0)

    # --- stalk -----------------------------------------------------------------------------------------
    def _press(self, button: str, t: float) -> None:
        if self.button is None and t - self.last_press_t > 1.0:
            self.button = (button, t + 0.2)
            self.last_press_t = t

    def _cruise(self, view: View) -> None:
        car, v = view.car, view.v
        want = self.cfg.use_cruise or self.cfg.mode == "supervise"
        if not want or car.engaged or view.t - self.took_over_t < 5.0:
            return
        # engage only when settled in the lane: there now and still there in REACT_S (heading along it). A driver
        # who engaged 0.3 m off while still steering back had the car drifting when it let go, and took over
        # seconds later for a drift it had left the assistant (4 of suburban 500000's 8 takeovers, issue 22)
        if max(abs(x) for x in self._off_and_ahead(view, self.target_offset(view.t))) > SETTLED_M:
            return
        # nor mid-corner: it lets go of the wheel at once, and the assistant's torque may only ramp up from nothing
        # (rate-limited: ~1 s to the full torque a 50 m corner takes), and a car handed over there ran wide
        if abs(view.steer_deg) > ENGAGE_STEER_DEG:
            return
        if self.change is not None:  # and not with a lane change of its own under way (blinker on or moving over)
            return
        if not car.main_on:
            self._press("main", view.t)
        elif v > self.veh.cruise_min_speed + 1.0 and abs(self.desired_accel(view)) < 0.3:  # at a steady speed
            self._press("set", view.t)

    # --- one step --------------------------------------------------------------------------------------
    def update(self, view: View) -> DriverControls:
        t = view.t
        # an Ornstein-Uhlenbeck wander (10 s correlation) with std lateral_noise
        theta, dt = 0.1, 0.01
        self.wander += -theta * self.wander * dt + self.cfg.lateral_noise * math.sqrt(2 * theta * dt) * \
            float(self.rng.standard_normal())
        self._plan_lane_change(view)
        self._cruise(view)
        if self.button is not None and t >= self.button[1]:
            self.button = None
        pressed = self.button[0] if self.button is not None else ""

        hands_off = self.cfg.mode == "supervise" and view.car.engaged
        why = self._must_take_over(view) if hands_off else ""
        if why:
            hands_off = False  # steer and brake now; cancel the cruise as well
            self.took_over += 1
            self.took_over_t = t
            self.takeovers.append((round(t, 2), why))
            self.button, self.last_press_t = None, -math.inf
            self._press("cancel", t)
        self.hands_off = hands_off
        if hands_off:
            torque, gas, brake = 0.0, 0.0, 0.0
        else:
            torque = self.steer(view)
            gas, brake = self.pedals(self.desired_accel(view), view)
        return DriverControls(steer_torque=torque, gas=gas, brake=brake, main=pressed == "main",
                              set=pressed == "set", resume=pressed == "resume", cancel=pressed == "cancel",
                              blinker=self.blinker)

    @staticmethod
    def _off_and_ahead(view: View, centre: float) -> tuple[float, float]:
        """(m off `centre` now, m off it in REACT_S if nothing changes): a driver reacts to the drift, not the line."""
        offset = view.d - centre
        return offset, offset + view.v * math.sin(view.heading) * REACT_S

    def _must_take_over(self, view: View) -> str:
        """Why the driver takes over now ("" while it lets the assistant drive)."""
        offset, ahead = self._off_and_ahead(view, self.road.lane_center_offset(self.lane))
        lead = self.lead(view)
        if lead is not None and view.v > lead.v:
            gap = lead.s - view.s - (lead.length + self.veh.length) / 2
            if gap / (view.v - lead.v) < 1.5:
                return f"closing in: {gap:.1f} m at {view.v - lead.v:.1f} m/s"
        if max(abs(offset), abs(ahead)) > DRIFT_M:
            return f"drifting: {offset:+.2f} m off the lane centre, {ahead:+.2f} m in {REACT_S} s"
        return ""
