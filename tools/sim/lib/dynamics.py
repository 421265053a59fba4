"""Ego vehicle dynamics: `step` runs the C loop (vehicle_dynamics.c via cffi), `step_python` is its
pure-Python reference, operation for operation (the tests hold them within 1e-9 of each other).

The model (SI units; the steering angle is the steering WHEEL's, left positive):
- Lateral: dynamic bicycle with linear tyres (cornering stiffness per axle, mass, yaw inertia). Below
  v_kinematic it is the kinematic bicycle, above v_dynamic the dynamic one, blended in between, so it is
  well-defined (and NaN-free) down to standstill. Steady state: yaw rate = v δ / (L + K v²), K the
  understeer gradient m (lr/Cf - lf/Cr) / L.
- EPS: motor torque (normalised to [-1, 1]) plus the driver's torque push against the tyres' aligning
  torque (∝ the steady-state lateral acceleration of the current angle) and the rack's centring; the
  imbalance sets the steering rate (rate-limited, lagged). The response quickens with speed as the
  aligning torque stiffens: about 0.05 s at 25 m/s, 0.15 s at 10 m/s. So torque → rate, and in steady
  state torque is proportional to lateral acceleration (eps_lat_accel_full per unit torque), as the
  torque lateral controller assumes. A driver's torque simply adds: enough of it overrides the motor.
  Friction (eps_friction, none by default) holds that much of the torque imbalance: below it the wheel
  does not move.
- Longitudinal: with accel_active the powertrain and brakes aim for the net acceleration accel_cmd,
  compensating drag, rolling resistance and grade (as a car's ACC does); the driver's gas and brake
  pedals add their own demand (the larger wins; a pressed brake pedal cuts the drive). Drive force lags
  by drive_tau and is limited by traction and power; brake force lags by brake_tau. No reverse gear:
  speed stops at 0, and at rest the brakes and rolling resistance hold the car until the drive force
  beats them (it does not roll back on hills).
- Simplifications: no load transfer, no tyre saturation, no lateral/longitudinal coupling (vx does not
  feel vy·r), no suspension pitch. Good for lane keeping and ACC; not for limit handling.

Defaults are a Toyota RAV4 2017-18 (opendbc: 3650 lb + driver, wheelbase 2.65 m, steer ratio 16.88, and
its measured torque-control lateral acceleration factor of about 2.09 m/s²).
"""

import math
import struct
from dataclasses import astuple, dataclass, fields
from operator import attrgetter

GRAVITY = 9.81


@dataclass(frozen=True)
class VehicleParams:
    """Field for field the C struct vd_params (see vehicle_dynamics.h for the meaning of each)."""
    mass: float = 1792.0
    yaw_inertia: float = 2870.0
    wheelbase: float = 2.65
    cg_to_front: float = 1.166
    cornering_front: float = 1.2e5
    cornering_rear: float = 1.4e5
    steer_ratio: float = 16.88
    max_steer_angle: float = math.radians(540.0)
    max_steer_rate: float = math.radians(460.0)
    eps_rate_gain: float = 5.0
    eps_tau: float = 0.03
    eps_lat_accel_full: float = 2.09
    eps_center_angle: float = 3.0
    driver_torque_full: float = 3.0
    drive_accel_max: float = 3.5
    drive_power_max: float = 130e3
    drive_tau: float = 0.25
    brake_decel_max: float = 9.0
    brake_tau: float = 0.12
    drag_area: float = 0.86
    air_density: float = 1.225
    rolling_resistance: float = 0.011
    v_kinematic: float = 2.0
    v_dynamic: float = 5.0
    max_substep: float = 0.002
    eps_friction: float = 0.0

    @property
    def cg_to_rear(self) -> float:
        return self.wheelbase - self.cg_to_front

    @property
    def understeer_gradient(self) -> float:
        """K in rad per m/s² of lateral acceleration (road wheel angle)."""
        lf, lr = self.cg_to_front, self.cg_to_rear
        return self.mass * (lr / self.cornering_front - lf / self.cornering_rear) / self.wheelbase

    def lat_accel_per_torque(self, v: float) -> float:
        """m/s² of steady-state lateral acceleration per unit of EPS torque at speed v (no friction): the torque
        balances the aligning torque (a_ss / eps_lat_accel_full) and the rack's centring (angle / eps_center_angle).
        What a torque controller's latAccelFactor stands for; the centring makes it speed-dependent."""
        angle_per_la = self.steer_ratio * (self.wheelbase + self.understeer_gradient * v * v) / (v * v)
        return 1.0 / (1.0 / self.eps_lat_accel_full + angle_per_la / self.eps_center_angle)

    def steady_state_yaw_rate(self, steer_angle: float, v: float) -> float:
        """The textbook linear bicycle model's yaw rate for a steering wheel angle held at speed v."""
        return v * (steer_angle / self.steer_ratio) / (self.wheelbase + self.understeer_gradient * v * v)


@dataclass
class VehicleState:
    """Field for field the C struct vd_state. (x, y, yaw) is the CG's pose in the world frame."""
    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0
    vx: float = 0.0
    vy: float = 0.0
    yaw_rate: float = 0.0
    steer_angle: float = 0.0
    steer_rate: float = 0.0
    accel: float = 0.0
    lat_accel: float = 0.0
    drive_force: float = 0.0
    brake_force: float = 0.0
    eps_torque: float = 0.0
    distance: float = 0.0

    @property
    def speed(self) -> float:
        return math.hypot(self.vx, self.vy)


@dataclass
class Inputs:
    """Field for field the C struct vd_inputs. accel_active is a bool here, 0/1 in C."""
    eps_torque: float = 0.0       # normalised [-1, 1]
    driver_torque: float = 0.0    # Nm
    accel_cmd: float = 0.0        # m/s², used when accel_active
    accel_active: bool = False
    gas: float = 0.0              # 0..1
    brake: float = 0.0            # 0..1
    grade: float = 0.0            # rise/run, positive uphill


STATE_FIELDS = tuple(f.name for f in fields(VehicleState))
_INPUT_FIELDS = tuple(f.name for f in fields(Inputs))
_PARAM_FIELDS = tuple(f.name for f in fields(VehicleParams))
# Every C struct is all doubles in field order (the tests check the layout), so a state or an input set
# travels as one packed block instead of field by field.
_STATE = struct.Struct(f"{len(STATE_FIELDS)}d")
_INPUT = struct.Struct(f"{len(_INPUT_FIELDS)}d")
_get_state, _get_inputs = attrgetter(*STATE_FIELDS), attrgetter(*_INPUT_FIELDS)


def _check_dt(dt: float) -> None:
    if not (0.0 < dt <= 1.0):
        raise ValueError(f"dt must be in (0, 1] s, got {dt}")


# --- C loop ------------------------------------------------------------------------------------------------
_c: dict = {}


def _lib():
    if not _c:
        try:
            from tools.sim.lib._dynamics import ffi, lib
        except ImportError as e:
            raise ImportError("the vehicle dynamics C module is not built: run `scons` in the repository root") from e
        cs, ci = ffi.new("vd_state *"), ffi.new("vd_inputs *")
        _c.update(ffi=ffi, lib=lib, params={}, state=cs, inputs=ci, state_buf=ffi.buffer(cs),
                  inputs_buf=ffi.buffer(ci))
    return _c


def _c_params(params: VehicleParams):
    c = _lib()
    cp = c["params"].get(params)
    if cp is None:
        cp = c["ffi"].new("vd_params *", dict(zip(_PARAM_FIELDS, astuple(params), strict=True)))
        if len(c["params"]) > 64:
            c["params"].clear()
        c["params"][params] = cp
    return cp


def step(params: VehicleParams, state: VehicleState, inputs: Inputs, dt: float) -> VehicleState:
    """The state after dt (s), computed by the C loop. The given state is not modified."""
    _check_dt(dt)
    c = _lib()
    _STATE.pack_into(c["state_buf"], 0, *_get_state(state))
    _INPUT.pack_into(c["inputs_buf"], 0, *_get_inputs(inputs))
    c["lib"].vd_step(_c_params(params), c["state"], c["inputs"], dt)
    return VehicleState(*_STATE.unpack_from(c["state_buf"]))


def run(params: VehicleParams, state: VehicleState, inputs: list[Inputs], dt: float) -> list[VehicleState]:
    """len(inputs) steps of dt in one C call; the state after each step."""
    _check_dt(dt)
    c = _lib()
    ffi, n = c["ffi"], len(inputs)
    cs = ffi.new("vd_state *")
    _STATE.pack_into(ffi.buffer(cs), 0, *_get_state(state))
    cin, out = ffi.new("vd_inputs[]", max(n, 1)), ffi.new("vd_state[]", max(n, 1))
    in_buf, out_buf = ffi.buffer(cin), ffi.buffer(out)
    for i, inp in enumerate(inputs):
        _INPUT.pack_into(in_buf, i * _INPUT.size, *_get_inputs(inp))
    c["lib"].vd_run(_c_params(params), cs, cin, n, dt, out)
    return [VehicleState(*_STATE.unpack_from(out_buf, i * _STATE.size)) for i in range(n)]


# --- Python reference ----------------------------------------------------------------------------------------
def _clip(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else (hi if x > hi else x)


def _finite(x: float) -> float:
    x = float(x)
    return x if math.isfinite(x) else 0.0


def _substep(p: VehicleParams, s: VehicleState, inp: Inputs, h: float) -> None:
    m, wb, lf = p.mass, p.wheelbase, p.cg_to_front
    lr = wb - lf
    cf, cr = p.cornering_front, p.cornering_rear
    v = s.vx
    delta = s.steer_angle / p.steer_ratio

    # longitudinal
    grade = _finite(inp.grade)
    norm = math.sqrt(1.0 + grade * grade)
    f_grade = m * GRAVITY * grade / norm
    f_roll = p.rolling_resistance * m * GRAVITY / norm
    f_drag = 0.5 * p.air_density * p.drag_area * v * v
    drive_max = min(m * p.drive_accel_max, p.drive_power_max / max(v, 1.0))
    drive_des = brake_des = 0.0
    if _finite(inp.accel_active) != 0.0:
        f = m * _finite(inp.accel_cmd) + f_drag + f_grade + (f_roll if v > 0.0 else 0.0)
        if f >= 0.0:
            drive_des = f
        else:
            brake_des = -f
    brake = _clip(_finite(inp.brake), 0.0, 1.0)
    drive_des = max(drive_des, _clip(_finite(inp.gas), 0.0, 1.0) * drive_max)
    brake_des = max(brake_des, brake * m * p.brake_decel_max)
    drive_des = 0.0 if brake > 0.0 else min(drive_des, drive_max)
    brake_des = min(brake_des, m * p.brake_decel_max)
    s.drive_force += (drive_des - s.drive_force) * min(1.0, h / p.drive_tau)
    s.brake_force += (brake_des - s.brake_force) * min(1.0, h / p.brake_tau)
    if v > 0.0:
        a = (s.drive_force - s.brake_force - f_drag - f_roll - f_grade) / m
    else:
        push, hold = s.drive_force - f_grade, s.brake_force + f_roll
        a = (push - hold) / m if push > hold else 0.0
    v_new = v + a * h
    if v_new < 0.0:
        v_new = 0.0
        a = -v / h

    # lateral
    tan_d = math.tan(delta)
    w = _clip((v - p.v_kinematic) / (p.v_dynamic - p.v_kinematic), 0.0, 1.0)
    ve = max(v, p.v_kinematic)
    alpha_f = delta - (s.vy + lf * s.yaw_rate) / ve
    alpha_r = -(s.vy - lr * s.yaw_rate) / ve
    fyf, fyr = cf * alpha_f, cr * alpha_r
    cos_d = math.cos(delta)
    dvy = (fyf * cos_d + fyr) / m - ve * s.yaw_rate
    dr = (lf * fyf * cos_d - lr * fyr) / p.yaw_inertia
    vy_dyn, r_dyn = s.vy + dvy * h, s.yaw_rate + dr * h
    vy_kin, r_kin = v_new * lr * tan_d / wb, v_new * tan_d / wb
    vy = w * vy_dyn + (1.0 - w) * vy_kin
    r = w * r_dyn + (1.0 - w) * r_kin

    # EPS
    k_us = m * (lr / cf - lf / cr) / wb
    a_ss = v * v * delta / max(wb + k_us * v * v, 0.1 * wb)
    eps = _clip(_finite(inp.eps_torque), -1.0, 1.0)
    u = eps + _finite(inp.driver_torque) / p.driver_torque_full
    resist = a_ss / p.eps_lat_accel_full + s.steer_angle / p.eps_center_angle
    imbalance = math.copysign(max(abs(u - resist) - p.eps_friction, 0.0), u - resist)
    rate_target = _clip(p.eps_rate_gain * imbalance, -p.max_steer_rate, p.max_steer_rate)
    steer_rate = s.steer_rate + (rate_target - s.steer_rate) * min(1.0, h / p.eps_tau)
    steer_angle = s.steer_angle + steer_rate * h
    if steer_angle > p.max_steer_angle:
        steer_angle, steer_rate = p.max_steer_angle, min(steer_rate, 0.0)
    elif steer_angle < -p.max_steer_angle:
        steer_angle, steer_rate = -p.max_steer_angle, max(steer_rate, 0.0)

    # pose
    c, sn = math.cos(s.yaw), math.sin(s.yaw)
    s.x += (v_new * c - vy * sn) * h
    s.y += (v_new * sn + vy * c) * h
    s.yaw += r * h
    s.vx, s.vy, s.yaw_rate = v_new, vy, r
    s.steer_angle, s.steer_rate = steer_angle, steer_rate
    s.accel, s.lat_accel, s.eps_torque = a, v_new * r, eps
    s.distance += v_new * h


def step_python(params: VehicleParams, state: VehicleState, inputs: Inputs, dt: float) -> VehicleState:
    """The pure-Python reference of `step` (same arithmetic, same order)."""
    _check_dt(dt)
    n = math.ceil(dt / params.max_substep - 1e-9)
    h = dt / n
    s = VehicleState(*_get_state(state))
    for _ in range(n):
        _substep(params, s, inputs, h)
    return s


def cruising_state(params: VehicleParams, x: float, y: float, yaw: float, v: float, grade: float = 0.0) -> VehicleState:
    """A state driving straight at speed v with the powertrain already pushing against drag, rolling
    resistance and grade (so it holds v under accel_active with accel_cmd = 0 instead of first sagging)."""
    norm = math.sqrt(1.0 + grade * grade)
    resist = (0.5 * params.air_density * params.drag_area * v * v
              + (params.rolling_resistance * params.mass * GRAVITY / norm if v > 0.0 else 0.0)
              + params.mass * GRAVITY * grade / norm)
    return VehicleState(x=x, y=y, yaw=yaw, vx=v, drive_force=max(resist, 0.0), brake_force=max(-resist, 0.0))
