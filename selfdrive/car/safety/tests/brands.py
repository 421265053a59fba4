"""One representative platform per brand that opendbc gives torque steering, with what a test needs to drive
its safety mode: the steering frame's signals, the car's cruise-engaged signal, the EPS torque signal of
motor-limited brands. Every frame is built with opendbc's CANPacker and the platform's DBCs (checksums
and counters included); the limits come from opendbc's CarControllerParams for the platform.

`BrandCar` keeps every message the mode tracks arriving (each at 100 Hz, all signals 0 unless overridden),
so the 1 Hz timeout check the layer runs finds the car alive, as it would on a real bus.
"""

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

from opendbc.can.packer import CANPacker
from opendbc.car import gen_empty_fingerprint
from opendbc.car.car_helpers import interfaces
from opendbc.car.values import PLATFORMS

from selfdrive.car.safety import Safety, SafetyMode

Signals = dict[str, float]


@dataclass(frozen=True)
class Brand:
    name: str
    platform: str
    steer_msg: str
    command: Callable[[int], Signals]        # torque (CAN units) -> the steering message's signals, request set
    engaged: dict[str, Signals] | None       # car messages' signals that mean "cruise engaged"; None: see below
    eps: tuple[str, Callable[[int], Signals]] | None = None  # motor-limited: the EPS reports the command back
    steer_bus: int = 0
    ramp: bool = True                        # False: the mode has no torque limits (Honda: the EPS limits itself)
    rate_exact: bool = True                  # opendbc's max_rate_up equals the carcontroller's STEER_DELTA_UP
    # signals that keep the car's state neutral where 0 does not (a "gas released" bit, a sane status)
    neutral: dict[str, Signals] = field(default_factory=dict)
    # signals while not engaged, where cruise off alone does not end controls (Honda Nidec: the main switch)
    off: dict[str, Signals] = field(default_factory=dict)


def _vw(prefix: str) -> Callable[[int], Signals]:
    return lambda t: {f"{prefix}LM_Offset": abs(t), f"{prefix}LM_OffSign": int(t < 0)}


# engaged=None: the brand's cruise frames need checksums opendbc's Python packer does not compute (Hyundai
# CAN), so the test engages with Safety.set_controls_allowed_for_tests (opendbc's harness has the same).
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
    Brand("hyundai", "HYUNDAI_SONATA", "LKAS11", lambda t: {"CR_Lkas_StrToqReq": t, "CF_Lkas_ActToi": 1}, None),
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
]


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
        self.eps_torque = 0
        self.tracked = []  # (packer, message name, bus, signals at 0)
        for alternatives in self.safety.rx_table:
            for alt in alternatives:
                found = self._find(alt["addr"])
                if found is not None:
                    packer, msg = found
                    zeros = {s: 0 for s in msg.sigs if s not in ("CHECKSUM", "COUNTER")}
                    self.tracked.append((packer, msg.name, alt["bus"], zeros))
                    break
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
        return ccp(self.CP) if len(inspect.signature(ccp.__init__).parameters) > 1 else ccp()

    def step(self, dt_us: int = 10_000) -> None:
        """One 10 ms step of the car: controlsd's heartbeat and every tracked message."""
        self.now += dt_us
        self.safety.heartbeat(self.now)
        for packer, name, bus, zeros in self.tracked:
            values = {**zeros, **self.brand.neutral.get(name, {})}
            if self.engaged and self.brand.engaged is not None:
                values.update(self.brand.engaged.get(name, {}))
            if not self.engaged:
                values.update(self.brand.off.get(name, {}))
            if self.brand.eps is not None and name == self.brand.eps[0]:
                values.update(self.brand.eps[1](self.eps_torque))
            addr, dat, _ = packer.make_can_msg(name, bus, values)
            if not self.safety.rx(addr, bus, dat, self.now):
                self.rx_refused[name] = self.rx_refused.get(name, 0) + 1
        if self.brand.engaged is None:
            self.safety.set_controls_allowed_for_tests(self.engaged)

    def engage(self, steps: int = 5) -> None:
        self.engaged = True
        for _ in range(steps):
            self.step()

    def disengage(self, steps: int = 5) -> None:
        self.engaged = False
        for _ in range(steps):
            self.step()

    def steer(self, torque: int) -> str:
        """Sends one steering frame now; returns "OK" or the reason it was refused."""
        name = self.brand.steer_msg
        addr, dat, _ = self._packer_of(name).make_can_msg(name, self.brand.steer_bus, self.brand.command(torque))
        verdict = self.safety.tx_verdict(addr, self.brand.steer_bus, dat, self.now)
        if verdict == "OK":
            self.eps_torque = torque
        return verdict
