"""The simulated car as its CAN bus shows it: a Toyota Safety Sense P car with torque steering whose DSU is
unplugged, so the driving assistant sends ACC_CONTROL and the car has no ACC of its own. SIM_PLATFORMS are the
cars it can be; they speak the same powertrain DBC and differ where opendbc says they do (EPS torque scale,
stop-and-go) and in the body the dynamics move. The default is the Lexus CT Hybrid: its cruise works down to a
stop, which traffic needs; the RAV4 2017-18 (the car of the recorded minute) cannot engage below 19 mph.

What is on the bus, and how it behaves, follows the real car (the recorded minute in
../shared/data/comma2k19-rav4 gives the periods and idle values):
  - bus 0 (powertrain): every message opendbc's TOYOTA_RAV4 car state reads, at the recorded periods,
    packed with opendbc's CANPacker (Toyota checksums; counters where the DBC has them); bus 2 (the stock
    LKA camera behind the harness): its own idle STEERING_LKA at 100 Hz and LKAS_HUD. A bus that carried only
    the 1 Hz HUD would be idle for longer than opendbc's bus timeout (500 ms) every second: canTimeout.
  - the PCM's cruise: main/set/resume/cancel buttons on the stalk; engaging needs main on, speed >= the
    platform's minimum (none with stop-and-go), gear D, no brake, and an ACC module on the bus (ACC_CONTROL
    arriving); brake, cancel, ACC_CONTROL's CANCEL_REQ or a silent ACC module end it; the gas pedal overrides it.
  - the EPS applies STEERING_LKA torque only while the cruise is engaged and STEER_REQUEST is set (a
    modelling choice: the LKA follows the driving assistant's engagement), adds the driver's torque, and
    faults for 2 s on a command drop-out or on torque at a steering rate above 100 deg/s.
Commands are checked as an ECU would: wrong length, bad checksum or a repeated counter -> ignored. Its ECUs
answer firmware and VIN queries with the strings opendbc lists for the platform (`ecus.py`), so the stack
identifies it as it identifies a real car.
Nothing here knows about roads or traffic: it gets the vehicle's motion and the driver's hands and
feet, and returns what its actuators do.
"""

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from opendbc.can import CANPacker
from opendbc.can.dbc import DBC, SignalType
from opendbc.can.parser import get_raw_value
from opendbc.car import Bus
from opendbc.car.can_definitions import CanData
from opendbc.car.common.conversions import Conversions as CV
from opendbc.car.toyota.values import CAR, EPS_SCALE, MIN_ACC_SPEED, CarControllerParams
from opendbc.car.toyota.values import DBC as TOYOTA_DBC

from tools.sim.lib.dynamics import VehicleParams
from tools.sim.lib.ecus import SimEcus, is_diagnostic


@dataclass(frozen=True)
class SimPlatform:
    """A car the simulator can be."""
    name: str                   # the opendbc platform its CAN speaks and its ECUs' firmware says (ecus.py)
    stop_and_go: bool           # the PCM's cruise works down to a stop and holds the car there
    vehicle: VehicleParams      # the body the dynamics move
    length: float               # m, bumper to bumper
    width: float                # m

    @property
    def min_engage_speed(self) -> float:
        """m/s the PCM's cruise engages at (opendbc's minEnableSpeed for a car without stop-and-go)."""
        return 0.0 if self.stop_and_go else MIN_ACC_SPEED

    @property
    def eps_report_scale(self) -> float:
        """STEER_TORQUE_EPS * scale = command units (opendbc's EPS_SCALE rule)."""
        return EPS_SCALE[self.name] / 100.0


# Bodies from opendbc's CarSpecs (mass + 136 kg of driver and cargo as opendbc counts it, wheelbase, steer ratio,
# centre of gravity at 44% of the wheelbase) and the torque lateral acceleration factor opendbc's torque controller
# assumes for the platform (LEXUS_CTH uses LEXUS_NX's); yaw inertia and cornering stiffness scaled from the RAV4's
# by mass, wheelbase and tyre stiffness factor the way opendbc scales them; drag and power from the makers' figures.
SIM_PLATFORMS: dict[str, SimPlatform] = {p.name: p for p in (
    SimPlatform(CAR.LEXUS_CTH, True, VehicleParams(
        mass=1545.8, yaw_inertia=2383.0, wheelbase=2.6, cg_to_front=1.144, cornering_front=0.967e5,
        cornering_rear=1.128e5, steer_ratio=18.6, eps_lat_accel_full=2.35, drive_accel_max=3.0,
        drive_power_max=100e3, drag_area=0.64), 4.32, 1.77),
    SimPlatform(CAR.TOYOTA_RAV4, False, VehicleParams(), 4.6, 1.85),
)}
DEFAULT_PLATFORM = CAR.LEXUS_CTH.value
PT_DBC: str = TOYOTA_DBC[DEFAULT_PLATFORM][Bus.pt]
assert all(TOYOTA_DBC[p][Bus.pt] == PT_DBC for p in SIM_PLATFORMS), "one DBC: the car's messages are packed from it"


def sim_platform(name: str) -> SimPlatform:
    """The simulated car called `name`; ValueError naming the known ones otherwise."""
    if name not in SIM_PLATFORMS:
        raise ValueError(f"the simulator has no car {name!r}; it has {', '.join(SIM_PLATFORMS)}")
    return SIM_PLATFORMS[name]

# Units of the Toyota torque signals. STEER_TORQUE_CMD's limit (opendbc's STEER_MAX, 1500) is the EPS
# motor's full torque; the driver torque sensor's scale is not published: 50 units per Nm makes opendbc's
# 100-unit "steering pressed" threshold (STEER_THRESHOLD) a firm 2 Nm.
LKA_FULL_UNITS = CarControllerParams.STEER_MAX
DRIVER_UNITS_PER_NM = 50.0    # STEER_TORQUE_DRIVER
STEER_OVERRIDE_NM = 3.0       # the EPS's own override bit: higher than opendbc's threshold
PEDAL_PRESSED = 0.02          # pedal travel (0..1) the switches report as pressed
STANDSTILL_HOLD = -1.0        # m/s^2 the PCM asks of the brakes while it holds the car
ACC_TIMEOUT_S = 0.5           # ACC_CONTROL silent this long: the PCM drops the cruise / refuses to engage
ACC_CMD_FRESH_S = 0.1         # an older ACC_CONTROL accel is not applied
LKA_FRESH_S = 0.05            # STEERING_LKA comes at 100 Hz; older is a drop-out
EPS_FAULT_S = 2.0             # LKA_STATE 9 for this long after a fault
EPS_RATE_LIMIT_DEG_S = 100.0  # torque at a faster steering rate for EPS_RATE_FAULT_S faults the EPS
EPS_RATE_FAULT_S = 0.2
SET_SPEED_MIN_KPH = 30
SET_SPEED_MAX_KPH = 180
TRACK_M = 1.6                 # wheel track, for the left/right wheel speed difference in turns

LKA_STANDBY, LKA_ACTIVE, LKA_FAULT = 1, 5, 9        # EPS_STATUS LKA_STATE
CRUISE_OFF, CRUISE_STANDSTILL, CRUISE_ENGAGED = 0, 7, 8  # PCM_CRUISE CRUISE_STATE
SM_DISABLED, SM_ENABLED = 2, 6                      # PCM_CRUISE_SM CRUISE_CONTROL_STATE
TURN_LEFT, TURN_RIGHT, TURN_NONE = 1, 2, 3          # BLINKERS_STATE TURN_SIGNALS


@dataclass(frozen=True)
class Periodic:
    name: str
    bus: int
    period_ms: int
    phase_ms: int  # so that not every message lands in the same 10 ms step

    def due(self, t_ms: int, dt_ms: int) -> bool:
        """Whether the message falls due in (t_ms - dt_ms, t_ms]."""
        return (t_ms - self.phase_ms) // self.period_ms > (t_ms - dt_ms - self.phase_ms) // self.period_ms


# Periods from the real drive (median spacing of each message on bus 0).
SCHEDULE: tuple[Periodic, ...] = (
    Periodic("KINEMATICS", 0, 12, 0),
    Periodic("STEER_ANGLE_SENSOR", 0, 12, 1),
    Periodic("WHEEL_SPEEDS", 0, 12, 2),
    Periodic("SPEED", 0, 24, 3),
    Periodic("BRAKE_MODULE", 0, 24, 5),
    Periodic("STEER_TORQUE_SENSOR", 0, 20, 4),
    Periodic("PCM_CRUISE", 0, 32, 6),
    Periodic("PCM_CRUISE_2", 0, 32, 7),
    Periodic("GAS_PEDAL", 0, 32, 9),
    Periodic("EPS_STATUS", 0, 40, 8),
    Periodic("VSC1S07", 0, 48, 11),
    Periodic("ESP_CONTROL", 0, 300, 13),
    Periodic("BODY_CONTROL_STATE", 0, 300, 17),
    Periodic("BODY_CONTROL_STATE_2", 0, 420, 19),
    Periodic("PCM_CRUISE_SM", 0, 1000, 23),
    Periodic("GEAR_PACKET", 0, 1000, 29),
    Periodic("LIGHT_STALK", 0, 1000, 31),
    Periodic("BLINKERS_STATE", 0, 8000, 37),  # and on every change
    Periodic("LKAS_HUD", 2, 1000, 41),
    Periodic("STEERING_LKA", 2, 10, 0),  # the stock camera's, cut off from bus 0 by the harness
)
ON_CHANGE = ("BLINKERS_STATE",)


@dataclass
class Motion:
    """What the car's sensors measure of the vehicle (from the dynamics)."""
    v: float = 0.0                # m/s, forward
    a: float = 0.0                # m/s^2, forward
    a_lat: float = 0.0            # m/s^2, left
    yaw_rate: float = 0.0         # rad/s, left
    steer_deg: float = 0.0        # steering wheel angle, left positive
    steer_rate_deg: float = 0.0   # deg/s


@dataclass
class DriverControls:
    """The human's hands and feet. Buttons are held while True (the car acts on the press)."""
    steer_torque: float = 0.0     # Nm on the wheel, left positive
    gas: float = 0.0              # pedal travel 0..1
    brake: float = 0.0            # pedal travel 0..1
    main: bool = False            # cruise main switch
    set: bool = False             # stalk down: SET / minus
    resume: bool = False          # stalk up: RES / plus
    cancel: bool = False
    blinker: int = 0              # 1 left, -1 right, 0 off


@dataclass
class Actuation:
    """What the car applies to the vehicle this step (the dynamics' inputs)."""
    eps_torque: float = 0.0       # EPS motor torque command, fraction of full (the LKA's command)
    driver_torque: float = 0.0    # Nm from the driver's hands
    accel: float = 0.0            # m/s^2 the PCM asks of powertrain and brakes, when accel_active
    accel_active: bool = False    # the cruise is controlling the speed
    gas: float = 0.0              # the driver's pedals, 0..1, passed through
    brake: float = 0.0


@dataclass
class Command:
    values: dict[str, float]
    t: float


@dataclass
class CarStatus:
    """The car's own state (what its dashboard shows), for the driver and the ground truth."""
    main_on: bool = False
    engaged: bool = False
    standstill: bool = False
    set_speed_kph: int = 0
    lka_active: bool = False
    lka_state: int = LKA_STANDBY
    gas_pressed: bool = False
    brake_pressed: bool = False
    follow_distance: int = 1
    refused: dict[str, int] = field(default_factory=dict)  # command frames ignored, by reason


def decode(dbc: DBC, address: int, dat: bytes) -> tuple[dict[str, float] | None, str | None]:
    """Signal values of a frame as its receiving ECU reads them, or (None, why) if it would drop it."""
    msg = dbc.addr_to_msg[address]
    if len(dat) != msg.size:
        return None, "length"
    out = {}
    for s in msg.sigs.values():
        raw = get_raw_value(dat, s)
        if s.type > SignalType.COUNTER and s.calc_checksum is not None and \
           raw != s.calc_checksum(address, s, bytearray(dat)):
            return None, "checksum"
        if s.is_signed:
            raw -= ((raw >> (s.size - 1)) & 1) * (1 << s.size)
        out[s.name] = raw * s.factor + s.offset
    return out, None


class SimCar:
    def __init__(self, platform: SimPlatform = SIM_PLATFORMS[DEFAULT_PLATFORM], steer_offset_deg: float = 0.0,
                 steer_gain: float = 1.0, steer_delay_steps: int = 0):
        self.platform = platform
        # a car that differs from its parameters: its steering answers the EPS motor's torque steer_gain times as much
        # as carParams' lateral acceleration per unit torque says (tyres, load, rack), steer_delay_steps updates late.
        # The motor itself delivers (and its sensor reports) the torque asked, as a real EPS does: opendbc's Toyota
        # limits keep the command near the measured motor torque, and a sensor reading X times the command would
        # hold a weaker car's command down to a fraction of what it asks
        self.steer_gain = steer_gain
        self.eps_pipe: deque[float] = deque([0.0] * steer_delay_steps)
        self.motor_torque = 0.0  # fraction of full: what the EPS motor delivers (the LKA's command, after the delay)
        self.packer = CANPacker(PT_DBC)
        self.dbc = self.packer.dbc
        self.rx_addresses = {self.dbc.name_to_msg[n].address: n for n in ("STEERING_LKA", "ACC_CONTROL")}
        self.status = CarStatus()
        self.commands: dict[str, Command] = {}
        self.lka_counter: int | None = None
        self.t = 0.0
        self.steer_offset_deg = steer_offset_deg  # the angle sensor's zero is not the straight-ahead angle
        self.motion = Motion()
        self.driver = DriverControls()
        self.prev = DriverControls()
        self.applied = Actuation()
        self.eps_fault_until = -1.0
        self.rate_fault_since: float | None = None
        self.acc_last_t = -math.inf
        self.prev_distance_btn = 0
        self.sent_blinker = TURN_NONE
        self.speed_encoder = 0.0
        self._packed: dict[str, tuple[tuple, CanData]] = {}
        self.cam_lka_counter = 0
        self.ecus = SimEcus(platform.name)  # what answers a tester's firmware and VIN queries

    # --- commands from the bus ------------------------------------------------------------------------
    def receive(self, frames: Iterable[CanData], t: float) -> None:
        """Frames the car's ECUs get on bus 0 (what canbridged let through) at time t."""
        for address, dat, bus in frames:
            if is_diagnostic(address):
                self.ecus.receive(address, bytes(dat), bus)
                continue
            name = self.rx_addresses.get(address)
            if bus != 0 or name is None:
                continue
            values, why = decode(self.dbc, address, bytes(dat))
            if values is None:
                self._refuse(f"{name}:{why}")
                continue
            if name == "STEERING_LKA":
                counter = int(values["COUNTER"])
                if counter == self.lka_counter:
                    self._refuse(f"{name}:counter")
                    continue
                self.lka_counter = counter
            else:
                self.acc_last_t = t
            self.commands[name] = Command(values, t)

    def _refuse(self, reason: str) -> None:
        self.status.refused[reason] = self.status.refused.get(reason, 0) + 1

    def _fresh(self, name: str, max_age: float) -> dict[str, float] | None:
        c = self.commands.get(name)
        return c.values if c is not None and self.t - c.t <= max_age else None

    # --- one step ------------------------------------------------------------------------------------
    def update(self, t: float, motion: Motion, driver: DriverControls) -> Actuation:
        """Advances the car's ECUs to time t given the vehicle's motion and the driver; returns the actuation."""
        self.t, self.motion, self.prev, self.driver = t, motion, self.driver, driver
        st = self.status
        st.gas_pressed = driver.gas > PEDAL_PRESSED
        st.brake_pressed = driver.brake > PEDAL_PRESSED
        self._cruise()
        accel = self._longitudinal()
        eps = self._eps()
        self.applied = Actuation(eps_torque=eps, driver_torque=driver.steer_torque, accel=accel,
                                 accel_active=st.engaged, gas=driver.gas, brake=driver.brake)
        return self.applied

    def _pressed(self, button: str) -> bool:
        return getattr(self.driver, button) and not getattr(self.prev, button)

    def _cruise(self) -> None:
        st, v = self.status, self.motion.v
        acc = self._fresh("ACC_CONTROL", ACC_TIMEOUT_S)
        if self._pressed("main"):
            st.main_on = not st.main_on
        can_engage = st.main_on and v >= self.platform.min_engage_speed and not st.brake_pressed and acc is not None
        v_kph = int(round(v * CV.MS_TO_KPH))
        if st.engaged:
            if self._pressed("set"):
                st.set_speed_kph = max(SET_SPEED_MIN_KPH, st.set_speed_kph - 1)
            if self._pressed("resume"):
                st.set_speed_kph = min(SET_SPEED_MAX_KPH, st.set_speed_kph + 1)
        elif can_engage and self._pressed("set"):
            st.engaged, st.set_speed_kph = True, min(max(v_kph, SET_SPEED_MIN_KPH), SET_SPEED_MAX_KPH)
        elif can_engage and self._pressed("resume") and st.set_speed_kph > 0:
            st.engaged = True
        cancel = (self.driver.cancel or st.brake_pressed or not st.main_on or acc is None or
                  bool(acc and acc["CANCEL_REQ"]))
        if cancel:
            st.engaged = False
        if acc is not None:  # the DISTANCE bit is a button the ACC module presses for the driver
            if acc["DISTANCE"] and not self.prev_distance_btn and st.engaged:
                st.follow_distance = st.follow_distance % 3 + 1
            self.prev_distance_btn = int(acc["DISTANCE"])

    def _longitudinal(self) -> float:
        """The PCM's acceleration target while engaged (the driver's pedals act on their own, the larger
        demand wins, in the powertrain)."""
        st = self.status
        if not st.engaged:
            st.standstill = False
            return 0.0
        acc = self._fresh("ACC_CONTROL", ACC_CMD_FRESH_S)
        cmd = 0.0
        if acc is not None:
            cmd = acc["ACCEL_CMD"] if acc["PERMIT_BRAKING"] else max(acc["ACCEL_CMD"], 0.0)
        # standstill: the PCM holds the car until the ACC module releases it with a positive request
        if self.motion.v < 0.05 and cmd <= 0.0:
            st.standstill = True
        elif st.standstill and acc is not None and acc["RELEASE_STANDSTILL"] and cmd > 0.0:
            st.standstill = False
        if st.standstill:
            cmd = min(cmd, STANDSTILL_HOLD)
        return max(cmd, 0.0) if st.gas_pressed else cmd  # the gas pedal overrides the cruise's braking

    def _eps(self) -> float:
        st, t = self.status, self.t
        lka = self._fresh("STEERING_LKA", LKA_FRESH_S)
        requested = lka is not None and bool(lka["STEER_REQUEST"])
        if st.lka_active and lka is None:
            self.eps_fault_until = t + EPS_FAULT_S  # the command stopped while the LKA was steering
        if requested and abs(self.motion.steer_rate_deg) > EPS_RATE_LIMIT_DEG_S and lka and lka["STEER_TORQUE_CMD"]:
            self.rate_fault_since = t if self.rate_fault_since is None else self.rate_fault_since
            if t - self.rate_fault_since >= EPS_RATE_FAULT_S:
                self.eps_fault_until = t + EPS_FAULT_S
        else:
            self.rate_fault_since = None
        faulted = t < self.eps_fault_until
        st.lka_active = requested and st.engaged and not faulted
        st.lka_state = LKA_FAULT if faulted else (LKA_ACTIVE if st.lka_active else LKA_STANDBY)
        asked = lka["STEER_TORQUE_CMD"] / LKA_FULL_UNITS if st.lka_active and lka is not None else 0.0
        self.eps_pipe.append(asked)
        self.motor_torque = self.eps_pipe.popleft()
        return self.steer_gain * self.motor_torque

    # --- what the car sends --------------------------------------------------------------------------
    def frames(self, t_ms: int, dt_ms: int = 10) -> list[CanData]:
        """The frames due in (t_ms - dt_ms, t_ms], packed with the car's state as of the last update."""
        out = []
        blinker = {1: TURN_LEFT, -1: TURN_RIGHT}.get(self.driver.blinker, TURN_NONE)
        for m in SCHEDULE:
            due = m.due(t_ms, dt_ms)
            if m.name in ON_CHANGE and blinker != self.sent_blinker:
                due = True
            if due:
                out.append(self._pack(m.name, m.bus))
        self.sent_blinker = blinker
        out += self.ecus.frames()
        self.speed_encoder = (self.speed_encoder + self.motion.v * dt_ms * 1e-3 * 10) % 256
        return out

    def _pack(self, name: str, bus: int) -> CanData:
        # Equal values pack to equal bytes: reuse them (the one counter, the camera's, is among the values)
        values = getattr(self, f"_v_{name.lower()}")()
        key = tuple(values.items())
        hit = self._packed.get(name)
        if hit is None or hit[0] != key:
            hit = self._packed[name] = (key, CanData(*self.packer.make_can_msg(name, bus, values)))
        return hit[1]

    def _v_kinematics(self) -> dict[str, float]:
        m = self.motion
        return {"YAW_RATE": math.degrees(m.yaw_rate), "ACCEL_X": m.a, "ACCEL_Y": m.a_lat}

    def _v_steer_angle_sensor(self) -> dict[str, float]:
        # 1.5 deg coarse steps plus a 0.1 deg fraction, as the real sensor splits the angle
        a = self.motion.steer_deg + self.steer_offset_deg
        coarse = 1.5 * round(a / 1.5)
        return {"STEER_ANGLE": coarse, "STEER_FRACTION": round((a - coarse) / 0.1) * 0.1,
                "STEER_RATE": self.motion.steer_rate_deg}

    def _v_wheel_speeds(self) -> dict[str, float]:
        v, dv = self.motion.v, self.motion.yaw_rate * TRACK_M / 2
        left, right = max(v - dv, 0.0) * CV.MS_TO_KPH, max(v + dv, 0.0) * CV.MS_TO_KPH
        return {"WHEEL_SPEED_FL": left, "WHEEL_SPEED_RL": left, "WHEEL_SPEED_FR": right, "WHEEL_SPEED_RR": right}

    def _v_speed(self) -> dict[str, float]:
        return {"SPEED": self.motion.v * CV.MS_TO_KPH, "ENCODER": int(self.speed_encoder)}

    def _v_brake_module(self) -> dict[str, float]:
        return {"BRAKE_PRESSED": int(self.status.brake_pressed), "BRAKE_PRESSURE": round(self.driver.brake * 1000)}

    def _v_steer_torque_sensor(self) -> dict[str, float]:
        d = self.applied.driver_torque
        return {"STEER_TORQUE_DRIVER": d * DRIVER_UNITS_PER_NM,
                "STEER_TORQUE_EPS": self.motor_torque * LKA_FULL_UNITS / self.platform.eps_report_scale,
                "STEER_ANGLE": 0.0, "STEER_ANGLE_INITIALIZING": 1,  # no accurate angle sensor (TSS-P)
                "STEER_OVERRIDE": int(abs(d) > STEER_OVERRIDE_NM)}

    def _v_pcm_cruise(self) -> dict[str, float]:
        st = self.status
        state = (CRUISE_STANDSTILL if st.standstill else CRUISE_ENGAGED) if st.engaged else CRUISE_OFF
        return {"GAS_RELEASED": int(not st.gas_pressed), "CRUISE_ACTIVE": int(st.engaged), "CRUISE_STATE": state,
                "ACC_BRAKING": int(st.engaged and self.applied.accel < 0),
                "ACCEL_NET": self.applied.accel if st.engaged else 0.0}

    def _v_pcm_cruise_2(self) -> dict[str, float]:
        st = self.status
        return {"MAIN_ON": int(st.main_on), "SET_SPEED": st.set_speed_kph if st.main_on else 0,
                "BRAKE_PRESSED": int(st.brake_pressed), "LOW_SPEED_LOCKOUT": 1, "ACC_FAULTED": 0,
                "PCM_FOLLOW_DISTANCE": st.follow_distance}

    def _v_pcm_cruise_sm(self) -> dict[str, float]:
        st = self.status
        return {"MAIN_ON": int(st.main_on), "CRUISE_CONTROL_STATE": SM_ENABLED if st.engaged else SM_DISABLED,
                "UI_SET_SPEED": st.set_speed_kph if st.main_on else 0, "DISTANCE_LINES": 4 - st.follow_distance}

    def _v_gas_pedal(self) -> dict[str, float]:
        return {"GAS_RELEASED": int(not self.status.gas_pressed), "GAS_PEDAL": min(self.driver.gas * 100.0, 127.0)}

    def _v_eps_status(self) -> dict[str, float]:
        return {"LKA_STATE": self.status.lka_state}

    def _v_vsc1s07(self) -> dict[str, float]:
        st = self.status
        return {"GVC": self.motion.a, "BRKON": int(st.brake_pressed or (st.engaged and self.applied.accel < -0.5))}

    def _v_esp_control(self) -> dict[str, float]:
        return {}

    def _v_body_control_state(self) -> dict[str, float]:
        return {}

    def _v_body_control_state_2(self) -> dict[str, float]:
        return {"UNITS": 1, "UI_SPEED": round(self.motion.v * CV.MS_TO_KPH), "METER_SLIDER_BRIGHTNESS_PCT": 100}

    def _v_gear_packet(self) -> dict[str, float]:
        return {"GEAR": 0, "DRIVE_ENGAGED": 1}  # D

    def _v_light_stalk(self) -> dict[str, float]:
        return {}

    def _v_blinkers_state(self) -> dict[str, float]:
        return {"TURN_SIGNALS": {1: TURN_LEFT, -1: TURN_RIGHT}.get(self.driver.blinker, TURN_NONE)}

    def _v_steering_lka(self) -> dict[str, float]:
        # the stock camera asks for nothing (the assistant behind the harness steers)
        self.cam_lka_counter = (self.cam_lka_counter + 1) % 64
        return {"STEER_REQUEST": 0, "STEER_TORQUE_CMD": 0, "SET_ME_1": 1, "COUNTER": self.cam_lka_counter}

    def _v_lkas_hud(self) -> dict[str, float]:
        # the stock camera's idle HUD (what the car port copies its lane-sway settings from)
        return {"SET_ME_X01": 1, "SET_ME_X02": 2, "LKAS_STATUS": 1, "LDA_SA_TOGGLE": 1, "LDA_SENSITIVITY": 2,
                "LANE_SWAY_TOGGLE": 1, "LANE_SWAY_SENSITIVITY": 2, "LANE_SWAY_FLD": 7, "LDW_EXIST": 1,
                "LEFT_LINE": 1, "RIGHT_LINE": 1}
