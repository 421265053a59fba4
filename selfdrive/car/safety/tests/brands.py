"""One representative platform per brand, with what a test needs to drive its safety mode: the steering
frame's signals, the car's cruise-engaged signal, the EPS torque (or measured angle) the car reports back.
`BRANDS` steer by torque (the comma body by motor torque), `ANGLE_BRANDS` by angle or curvature. Every frame
is built with opendbc's CANPacker and the platform's DBCs; where the packer runs no counter or computes no
checksum for a message the mode checks (Hyundai CAN, Ford, Rivian), the brand's entry below does, the way
opendbc's own safety test harness does. The limits come from opendbc's CarControllerParams for the platform.

`BrandCar` keeps every message the mode tracks arriving (each at 100 Hz, all signals 0 unless overridden),
so the 1 Hz timeout check the layer runs finds the car alive, as it would on a real bus.
"""

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from opendbc.can.dbc import SignalType
from opendbc.can.packer import CANPacker
from opendbc.car import gen_empty_fingerprint
from opendbc.car.car_helpers import interfaces
from opendbc.car.lateral import get_max_angle_delta_vm
from opendbc.car.rivian.riviancan import checksum as rivian_crc
from opendbc.car.values import PLATFORMS
from opendbc.car.vehicle_model import VehicleModel

from selfdrive.car.safety import Safety, SafetyMode

Signals = dict[str, float]


@dataclass(frozen=True)
class Brand:
    name: str
    platform: str
    steer_msg: str
    command: Callable[[int], Signals]        # torque (CAN units) -> the steering message's signals, request set
    engaged: dict[str, Signals]              # car messages' signals that mean "cruise engaged"
    eps: tuple[str, Callable[[int], Signals]] | None = None  # motor-limited: the EPS reports the command back
    steer_bus: int = 0
    ramp: bool = True                        # False: the mode has no torque limits (Honda: the EPS limits itself)
    rate_exact: bool = True                  # opendbc's max_rate_up equals the carcontroller's STEER_DELTA_UP
    # signals that keep the car's state neutral where 0 does not (a "gas released" bit, a sane status)
    neutral: dict[str, Signals] = field(default_factory=dict)
    # signals while not engaged, where cruise off alone does not end controls (Honda Nidec: the main switch)
    off: dict[str, Signals] = field(default_factory=dict)
    # counters the packer does not run: message -> n (frames sent so far) -> counter signals
    counters: dict[str, Callable[[int], Signals]] = field(default_factory=dict)
    # checksums the packer does not compute: message -> (address, packed frame) -> frame with the checksum set
    checksums: dict[str, Callable[[int, bytes], bytes]] = field(default_factory=dict)
    # messages that stop while not engaged (comma body: its motor board's frame is the engagement)
    silent_when_off: tuple[str, ...] = ()
    off_steps: int = 5                       # steps disengage() runs: > 2 s where the mode's timeout must notice
    # the torque limit at the speed the test drives, where CarControllerParams' STEER_MAX is not it (Rivian)
    steer_max: Callable[[object], int] | None = None
    # command and eps signals are given in raw CAN units (integers, as the mode's .h decodes them)
    raw: bool = False


@dataclass(frozen=True)
class AngleBrand(Brand):
    """An angle (or curvature) steering brand. `command(value, active)` gives the steering message's signals for
    a command in the mode's CAN units (what its .h decodes: 0.1 deg, 0.01 deg, 2e-5 1/m); `eps` reports the
    last command that left back as the measured angle."""
    speed: float = 0.0                       # m/s the car drives at (set through `neutral`)
    steer_step: int = 1                      # 10 ms steps between steering frames (the carcontroller's)
    scale: float = 1.0                       # CAN units per degree (per 1/m): the .h's angle_deg_to_can
    # (carcontroller's rate at `speed`, the rate the .h computes at `speed` less its 1 m/s fudge), per frame in
    # degrees (1/m); both from opendbc's CarControllerParams ANGLE_LIMITS (tables or vehicle model)
    rates: Callable[["BrandCar"], tuple[float, float]] = lambda car: (0.0, 0.0)
    inactive_zero: bool = False              # an inactive frame carries 0, not the measured angle (ford.h)
    sensor_step: int = 1                     # the measured angle's resolution in the command's units


def _vw(prefix: str) -> Callable[[int], Signals]:
    return lambda t: {f"{prefix}LM_Offset": abs(t), f"{prefix}LM_OffSign": int(t < 0)}


def _nibble_sum(dat: bytes, skip: Callable[[int, int], int]) -> int:
    """Hyundai CAN's 4-bit checksum (opendbc's hyundai.h / hyundaican.py): 16 minus the sum of every nibble, the
    checksum's own bits masked out by `skip(byte index, byte)`."""
    return (16 - sum(sum(divmod(skip(i, b), 16)) for i, b in enumerate(dat)) % 16) % 16


def _hyundai_checksum(addr: int, dat: bytes) -> bytes:
    """The checksums of the messages hyundai.h checks, computed here: opendbc's packer computes none for Hyundai
    CAN. Same algorithms as hyundai.h's hyundai_compute_checksum and opendbc's safety test harness."""
    d = bytearray(dat)
    if addr == 0x386:  # WHL_SPD11: count of the set bits outside checksum and counter, ^ 9
        ones = sum((b >> j) & 1 for i, b in enumerate(d) for j in range(8) if not (i in (1, 3, 5, 7) and j >= 6))
        c = (ones ^ 9) & 0xF
        d[5] = (d[5] & 0x3F) | ((c & 0x3) << 6)
        d[7] = (d[7] & 0x3F) | ((c & 0xC) << 4)
    elif addr == 0x260:  # EMS16: checksum in byte 7's low nibble
        d[7] = (d[7] & 0xF0) | _nibble_sum(d, lambda i, b: b & 0xF0 if i == 7 else b)
    elif addr == 0x394:  # TCS13: checksum in byte 6's low nibble, byte 7 not summed
        d[6] = (d[6] & 0xF0) | _nibble_sum(d, lambda i, b: 0 if i == 7 else (b & 0xF0 if i == 6 else b))
    elif addr == 0x421:  # SCC12: checksum in byte 7's high nibble
        d[7] = (d[7] & 0x0F) | (_nibble_sum(d, lambda i, b: b & 0x0F if i == 7 else b) << 4)
    return bytes(d)


def _ford_checksum(addr: int, dat: bytes) -> bytes:
    """Ford's 8-bit checksums (ford.h's ford_compute_checksum): 0xFF minus the sum of the signals' bytes."""
    d = bytearray(dat)
    if addr == 0x415:  # BrakeSysFeatures: speed, quality flag, counter
        d[3] = (0xFF - (d[0] + d[1] + (d[2] >> 6) + ((d[2] >> 2) & 0xF))) & 0xFF
    elif addr == 0x91:  # Yaw_Data_FD1: roll, yaw, counter, quality flags
        d[4] = (0xFF - (d[0] + d[1] + d[2] + d[3] + d[5] + (d[6] >> 6) + ((d[6] >> 4) & 0x3))) & 0xFF
    return bytes(d)


def _rivian(xor_out: int) -> Callable[[int, bytes], bytes]:
    """Rivian's CRC8 in byte 0 (opendbc's riviancan.checksum, with rivian.h's output xor for the message)."""
    return lambda addr, dat: bytes([rivian_crc(dat[1:], 0x1D, xor_out)]) + dat[1:]


def _table_rates(car: "BrandCar") -> tuple[float, float]:
    """Brands whose ANGLE_LIMITS are rate tables by speed: the carcontroller's wind-up rate at the speed, and the
    .h's (its lateral.h takes the speed less 1 m/s, so that it never refuses what openpilot computed)."""
    up = car.limits.ANGLE_LIMITS.ANGLE_RATE_LIMIT_UP
    return float(np.interp(car.brand.speed, *up)), float(np.interp(car.brand.speed - 1, *up))


def _vm_rates(car: "BrandCar") -> tuple[float, float]:
    """Tesla: the vehicle model's lateral jerk limit (opendbc's get_max_angle_delta_vm; tesla.h uses the same model
    with the Model Y's parameters) at the speed, and at the speed less lateral.h's 1 m/s fudge."""
    vm, lim = VehicleModel(car.CP), car.limits
    cc = min(get_max_angle_delta_vm(car.brand.speed, vm, lim), lim.ANGLE_LIMITS.MAX_ANGLE_RATE)
    return cc, get_max_angle_delta_vm(max(car.brand.speed - 1, 1), vm, lim)


BRANDS = [
    Brand("toyota", "TOYOTA_RAV4", "STEERING_LKA", lambda t: {"STEER_TORQUE_CMD": t, "STEER_REQUEST": 1},
          {"PCM_CRUISE": {"CRUISE_ACTIVE": 1, "GAS_RELEASED": 1}},
          eps=("STEER_TORQUE_SENSOR", lambda t: {"STEER_TORQUE_EPS": t / 73 * 100}),
          neutral={"PCM_CRUISE": {"GAS_RELEASED": 1}}),
    Brand("honda_nidec", "HONDA_CIVIC", "STEERING_CONTROL", lambda t: {"STEER_TORQUE": t, "STEER_TORQUE_REQUEST": 1},
          {"POWERTRAIN_DATA": {"ACC_STATUS": 1}}, ramp=False, neutral={"SCM_FEEDBACK": {"MAIN_ON": 1}},
          off={"SCM_FEEDBACK": {"MAIN_ON": 0}}),
    Brand("honda_bosch", "HONDA_CIVIC_BOSCH", "STEERING_CONTROL",
          lambda t: {"STEER_TORQUE": t, "STEER_TORQUE_REQUEST": 1}, {"POWERTRAIN_DATA": {"ACC_STATUS": 1}}, ramp=False,
          neutral={"SCM_FEEDBACK": {"MAIN_ON": 1}}),
    # Hyundai CAN: the packer runs none of these counters and computes no checksum (see _hyundai_checksum)
    Brand("hyundai", "HYUNDAI_SONATA", "LKAS11", lambda t: {"CR_Lkas_StrToqReq": t, "CF_Lkas_ActToi": 1},
          {"SCC12": {"ACCMode": 1}, "CLU11": {"CF_Clu_CruiseSwState": 2}},
          counters={"EMS16": lambda n: {"AliveCounter": n % 4},
                    "WHL_SPD11": lambda n: {"WHL_SPD_AliveCounter_LSB": n % 16 & 0x3,
                                            "WHL_SPD_AliveCounter_MSB": n % 16 >> 2},
                    "TCS13": lambda n: {"AliveCounterTCS": n % 8}, "CLU11": lambda n: {"CF_Clu_AliveCnt1": n % 16},
                    "SCC12": lambda n: {"CR_VSM_Alive": n % 16}},
          checksums={m: _hyundai_checksum for m in ("EMS16", "WHL_SPD11", "TCS13", "SCC12")}),
    # Hyundai engages only after a recent button press of the driver's: SET with the cruise coming on
    Brand("hyundai_canfd", "HYUNDAI_IONIQ_5", "LFA", lambda t: {"StrTqReqVal": t, "ActToiSta": 1},
          {"SCC_CONTROL": {"ACCMode": 1}, "CRUISE_BUTTONS_ALT": {"CRUISE_BUTTONS": 2}}),
    Brand("gm", "CHEVROLET_BOLT_EUV", "ASCMLKASteeringCmd",
          lambda t: {"LKASteeringCmd": t, "LKASteeringCmdActive": 1}, {"AcceleratorPedal2": {"CruiseState": 1}}),
    Brand("subaru", "SUBARU_OUTBACK", "ES_LKAS", lambda t: {"LKAS_Output": t, "LKAS_Request": 1},
          {"CruiseControl": {"Cruise_Activated": 1}}),
    Brand("subaru_preglobal", "SUBARU_FORESTER_PREGLOBAL", "ES_LKAS",
          lambda t: {"LKAS_Command": t, "LKAS_Active": 1}, {"CruiseControl": {"Cruise_Activated": 1}}),
    Brand("volkswagen_mqb", "VOLKSWAGEN_GOLF_MK7", "HCA_01",
          lambda t: {**_vw("HCA_01_")(t), "HCA_01_Sendestatus": 1}, {"TSK_06": {"TSK_Status": 3}}),
    Brand("volkswagen_pq", "VOLKSWAGEN_PASSAT_NMS", "HCA_1", lambda t: {**_vw("")(t), "HCA_Status": 7},
          {"Motor_2": {"MO2_Sta_GRA": 1}}),
    Brand("chrysler", "CHRYSLER_PACIFICA_2018", "LKAS_COMMAND",
          lambda t: {"STEERING_TORQUE": t, "LKAS_CONTROL_BIT": 1}, {"DAS_3": {"ACC_ACTIVE": 1}},
          eps=("EPS_2", lambda t: {"EPS_TORQUE_MOTOR": t})),
    Brand("mazda", "MAZDA_CX5_2022", "CAM_LKAS", lambda t: {"LKAS_REQUEST": t}, {"CRZ_CTRL": {"CRZ_ACTIVE": 1}}),
    # rivian.h's torque limit depends on the speed (STEER_MAX_LOOKUP): at a standstill, the test's, it is 350
    Brand("rivian", "RIVIAN_R1", "ACM_lkaHbaCmd", lambda t: {"ACM_lkaStrToqReq": t, "ACM_lkaActToi": 1},
          {"ACM_Status": {"ACM_FeatureStatus": 1}}, steer_max=lambda lim: lim.STEER_MAX_LOOKUP[1][0],
          neutral={"ESP_Status": {"ESP_Vehicle_Speed_Q": 1}, "VDM_PropStatus": {"VDM_VehicleSpeedQ": 1}},
          counters={"ESP_Status": lambda n: {"ESP_Status_Counter": n % 15},
                    "VDM_PropStatus": lambda n: {"VDM_PropStatus_Counter": n % 15}},
          checksums={"ESP_Status": _rivian(0xB1), "VDM_PropStatus": _rivian(0x9A)}),
    Brand("volkswagen_mlb", "AUDI_Q5_MK1", "HCA_01", lambda t: {**_vw("HCA_01_")(t), "HCA_01_Status_HCA": 7},
          {"TSK_04": {"TSK_Status_GRA_ACC_02": 1}}),
    # comma body: no cruise and no limits. body.h allows controls on every frame of the motor board (MOTORS_DATA);
    # "off" is that board going quiet, which the mode's 1 Hz timeout check notices within 2 s
    Brand("body", "COMMA_BODY", "TORQUE_CMD", lambda t: {"TORQUE_L": t, "TORQUE_R": t}, {}, ramp=False,
          silent_when_off=("MOTORS_DATA",), off_steps=210),
]


# Angle brands drive at a speed above their rate tables' last breakpoint (+1 m/s), where the carcontroller's
# rate and the .h's are the same table value; Tesla's model gives a rate at any speed.
ANGLE_BRANDS = [
    # ford.h (CAN, LateralMotionControl): curvature in 2e-5 1/m, the other path signals at their inactive raw
    # values; measured curvature = yaw rate / speed, so the yaw rate is reported back; above 10 m/s the command
    # must also stay within 0.002 1/m of it
    AngleBrand("ford", "FORD_BRONCO_SPORT_MK1", "LateralMotionControl",
               lambda c, on: {"LatCtlCurv_No_Actl": c + 1000, "LatCtl_D_Rq": int(on), "LatCtlCurv_NoRate_Actl": 4096,
                              "LatCtlPath_An_Actl": 1000, "LatCtlPathOffst_L_Actl": 512, "LatCtlPrecision_D_Rq": 1},
               {"EngBrakeData": {"CcStat_D_Actl": 5}},
               eps=("Yaw_Data_FD1", lambda c: {"VehYaw_W_Actl": 32500 + c * 3, "VehRol_W_Actl": 32500}),
               neutral={"BrakeSysFeatures": {"Veh_V_ActlBrk": 10800, "VehVActlBrk_D_Qf": 3},
                        "EngVehicleSpThrottle2": {"Veh_V_ActlEng": 10800, "VehVActlEng_D_Qf": 3},
                        "Yaw_Data_FD1": {"VehYawWActl_D_Qf": 3, "VehYaw_W_Actl": 32500, "VehRol_W_Actl": 32500}},
               counters={"BrakeSysFeatures": lambda n: {"VehVActlBrk_No_Cnt": n % 16},
                         "Yaw_Data_FD1": lambda n: {"VehRollYaw_No_Cnt": n % 256}},
               checksums={"BrakeSysFeatures": _ford_checksum, "Yaw_Data_FD1": _ford_checksum},
               # 108 km/h; yaw rate = curvature * 30
               raw=True, speed=30.0, steer_step=5, scale=50000, rates=_table_rates, inactive_zero=True),
    # tesla.h: 0.1 deg, vehicle-model limits at 50 Hz; DI_speed and ESP_B agree on 72 km/h
    AngleBrand("tesla", "TESLA_MODEL_Y", "DAS_steeringControl",
               lambda a, on: {"DAS_steeringAngleRequest": a + 16384, "DAS_steeringControlType": int(on)},
               {"DI_state": {"DI_cruiseState": 2}},
               eps=("EPAS3S_sysStatus", lambda a: {"EPAS3S_internalSAS": a + 8192}),
               neutral={"DI_speed": {"DI_vehicleSpeed": 1400},
                        "ESP_B": {"ESP_vehicleSpeed": 144, "ESP_wheelSpeedsQF": 1},
                        "ESP_status": {"ESP_driverBrakeApply": 1}, "EPAS3S_sysStatus": {"EPAS3S_internalSAS": 8192},
                        "DAS_steeringControl": {"DAS_steeringAngleRequest": 16384}},
               raw=True, speed=20.0, steer_step=2, scale=10, rates=_vm_rates),
    # nissan.h: 0.01 deg; DESIRED_ANGLE's raw value is 1310 deg less the angle; the sensor reports -0.1 deg
    AngleBrand("nissan", "NISSAN_XTRAIL", "LKAS", lambda a, on: {"DESIRED_ANGLE": 131000 - a, "LKA_ACTIVE": int(on)},
               {"CRUISE_STATE": {"CRUISE_ENABLED": 1}},
               eps=("STEER_ANGLE_SENSOR", lambda a: {"STEER_ANGLE": -round(a / 10)}),
               neutral={"WHEEL_SPEEDS_REAR": {"WHEEL_SPEED_RR": 14400, "WHEEL_SPEED_RL": 14400}},  # 72 km/h
               raw=True, speed=20.0, steer_step=1, scale=100, rates=_table_rates, sensor_step=10),
    # psa.h: 0.1 deg; TORQUE_FACTOR 100 is the steering request
    AngleBrand("psa", "PSA_PEUGEOT_208", "LANE_KEEP_ASSIST",
               lambda a, on: {"SET_ANGLE": a, "TORQUE_FACTOR": 100 if on else 0, "DRIVE": 1, "LXA_ACTIVATION": 1},
               {"HS2_DAT_MDD_CMD_452": {"RVV_ACC_ACTIVATION_REQ": 1}}, eps=("STEERING_ALT", lambda a: {"ANGLE": a}),
               neutral={"HS2_DYN_ABR_38D": {"VITESSE_VEHICULE_ROUES": 9720}},  # 97.2 km/h = 27 m/s
               raw=True, speed=27.0, steer_step=1, scale=10, rates=_table_rates),
]
ALL_BRANDS = BRANDS + ANGLE_BRANDS


class BrandCar:
    """A brand's safety mode with the car's tracked messages kept alive; times in µs, 10 ms a step."""

    def __init__(self, brand: Brand, start_us: int = 1_000_000):
        self.brand = brand
        CI = interfaces[brand.platform]
        self.CP = CI.get_params(brand.platform, gen_empty_fingerprint(), [], False, False, False)
        cfg = self.CP.safetyConfigs[-1]
        self.safety = Safety(SafetyMode(cfg.safetyModel.raw), int(cfg.safetyParam))
        self.packers = [CANPacker(d) for d in PLATFORMS[brand.platform].config.dbc_dict.values()]
        self.now = start_us
        self.engaged = False
        self.eps_torque = 0  # the last command that left (torque, or angle in the mode's units)
        self.tracked = []  # (packer, message name, bus, signals at 0)
        for alternatives in self.safety.rx_table:
            for alt in alternatives:
                found = self._find(alt["addr"])
                if found is not None:
                    packer, msg = found
                    # the packer runs counters and computes checksums it knows: leave those signals to it
                    zeros = {n: 0 for n, sig in msg.sigs.items()
                             if n not in ("CHECKSUM", "COUNTER") and sig.type == SignalType.DEFAULT}
                    self.tracked.append((packer, msg.name, alt["bus"], zeros))
                    break
        self.sent: dict[str, int] = {}  # frames of each message so far (the counters the packer does not run)
        self.rx_calls = 0
        self.rx_refused: dict[str, int] = {}

    def _find(self, addr: int):
        for p in self.packers:
            if addr in p.dbc.addr_to_msg:
                return p, p.dbc.addr_to_msg[addr]
        return None

    def _packer_of(self, name: str) -> CANPacker:
        return next(p for p in self.packers if name in p.dbc.name_to_msg)

    @property
    def limits(self):
        """opendbc's CarControllerParams for the platform (some take the CarParams)."""
        brand_pkg = interfaces[self.brand.platform].__module__.rsplit(".", 1)[0]
        ccp = importlib.import_module(f"{brand_pkg}.values").CarControllerParams
        takes_cp = ccp.__init__ is not object.__init__ and len(inspect.signature(ccp.__init__).parameters) > 1
        return ccp(self.CP) if takes_cp else ccp()

    def frame(self, name: str, bus: int, values: Signals) -> tuple[int, bytes]:
        """Packs one message: the brand's raw values turned into the DBC's units, its counter and checksum set."""
        packer = self._packer_of(name)
        n = self.sent.get(name, 0)
        self.sent[name] = n + 1
        if name in self.brand.counters:
            values = {**values, **self.brand.counters[name](n)}
        if self.brand.raw:  # the packer computes floor(x / factor + 0.5) of these: exact for integers
            sigs = packer.dbc.name_to_msg[name].sigs
            values = {k: v * sigs[k].factor + sigs[k].offset for k, v in values.items()}
        addr, dat, _ = packer.make_can_msg(name, bus, values)
        if name in self.brand.checksums:
            dat = self.brand.checksums[name](addr, dat)
        return addr, dat

    def step(self, dt_us: int = 10_000) -> None:
        """One 10 ms step of the car: controlsd's heartbeat and every tracked message."""
        self.now += dt_us
        self.safety.heartbeat(self.now)
        for _, name, bus, zeros in self.tracked:
            if not self.engaged and name in self.brand.silent_when_off:
                continue
            values = {**zeros, **self.brand.neutral.get(name, {})}
            if self.engaged:
                values.update(self.brand.engaged.get(name, {}))
            else:
                values.update(self.brand.off.get(name, {}))
            if self.brand.eps is not None and name == self.brand.eps[0]:
                values.update(self.brand.eps[1](self.eps_torque))
            addr, dat = self.frame(name, bus, values)
            self.rx_calls += 1
            if not self.safety.rx(addr, bus, dat, self.now):
                self.rx_refused[name] = self.rx_refused.get(name, 0) + 1

    def engage(self, steps: int = 5) -> None:
        self.engaged = True
        for _ in range(steps):
            self.step()

    def disengage(self, steps: int | None = None) -> None:
        self.engaged = False
        for _ in range(self.brand.off_steps if steps is None else steps):
            self.step()

    def steer(self, torque: int, *active: bool) -> str:
        """Sends one steering frame now (an angle brand's: `steer(angle, active)`); "OK" or why it was refused."""
        addr, dat = self.frame(self.brand.steer_msg, self.brand.steer_bus, self.brand.command(torque, *active))
        verdict = self.safety.tx_verdict(addr, self.brand.steer_bus, dat, self.now)
        if verdict == "OK" and all(active):
            self.eps_torque = torque
        return verdict
