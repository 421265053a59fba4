"""How this installation is wired, where it differs from what the opendbc platform expects.

opendbc describes a stock car. Real installations differ, and card's CAN validity is only honest when
its expectations match what is on the bus:
  - Toyota TSS-P cars whose DSU (the ACC/radar ECU on the powertrain bus) is unplugged, so that
    roadpilot does the longitudinal control: the car never sends PRE_COLLISION (0x283) or
    ACC_CONTROL (0x343). opendbc expresses "the car's own ACC ECU is out of the loop" with
    ToyotaFlags.DISABLE_RADAR (carstate stops reading PRE_COLLISION, the controller sends ACC_CONTROL);
  - an adapter that does not connect every bus the port reads (a recording with no camera bus): messages
    expected on a bus that is not connected cannot arrive, and waiting for them would keep canValid false.
Each rule is explicit (`CarSetup`, from card's options) or detected from the fingerprint window, and
every decision is returned as a note that card logs.
"""

from dataclasses import dataclass, field
from typing import Literal

from opendbc.car import gen_empty_fingerprint
from opendbc.car.car_helpers import interfaces
from opendbc.car.structs import CarParams
from opendbc.car.toyota.values import CAR as TOYOTA
from opendbc.car.toyota.values import NO_DSU_CAR, UNSUPPORTED_DSU_CAR, ToyotaFlags, ToyotaSafetyFlags

from selfdrive.car.fingerprinting import SOURCES, FingerprintResult

DsuSetting = Literal["auto", "present", "absent"]
DSU_ADDRESSES = (0x283, 0x343)  # PRE_COLLISION, ACC_CONTROL: what a TSS-P DSU sends on bus 0
RADAR_TESTER_PRESENT = (0x750, 0)  # opendbc keeps a disabled radar quiet with this; an unplugged DSU needs nothing

TOYOTA_PLATFORMS = frozenset(c.value for c in TOYOTA)
FINGERPRINT_SOURCES = {"fw": CarParams.FingerprintSource.fw, "can": CarParams.FingerprintSource.can,
                       "fixed": CarParams.FingerprintSource.fixed}


@dataclass(frozen=True)
class CarSetup:
    """The installation, as the user states it (or "auto": detect it from the bus)."""
    dsu: DsuSetting = "auto"
    buses: frozenset[int] | None = None  # buses the adapter connects; None: those that carried frames


@dataclass
class CarPlan:
    """What card builds: the CarParams, and what its validity and output must take into account."""
    CP: CarParams
    connected_buses: frozenset[int] | None  # None: unknown (no CAN seen) -> every bus is expected
    tx_drop: dict[tuple[int, int], str] = field(default_factory=dict)  # (address, bus) -> why card never sends it
    notes: list[str] = field(default_factory=list)


def dsu_platform(candidate: str) -> bool:
    """A Toyota whose stock ACC lives in a DSU that can be unplugged (TSS-P, not the DSU-less or unsupported ones)."""
    return candidate in TOYOTA_PLATFORMS and candidate not in NO_DSU_CAR and candidate not in UNSUPPORTED_DSU_CAR


def detect_dsu(fp: FingerprintResult) -> bool | None:
    """True/False when the fingerprint window shows the DSU's messages on bus 0 or not; None without CAN."""
    bus0 = fp.fingerprint.get(0, {})
    if not fp.buses_seen:
        return None
    return any(a in bus0 for a in DSU_ADDRESSES)


def apply_dsu_absent(CP: CarParams, plan: CarPlan) -> None:
    CP.flags |= ToyotaFlags.DISABLE_RADAR.value
    CP.openpilotLongitudinalControl = True
    CP.autoResumeSng = True
    CP.safetyConfigs[0].safetyParam &= ~ToyotaSafetyFlags.STOCK_LONGITUDINAL.value
    plan.tx_drop[RADAR_TESTER_PRESENT] = "tester present for a radar that is unplugged"


def build_plan(fp: FingerprintResult, setup: CarSetup, alpha_long: bool = False) -> CarPlan:
    """CarParams for the fingerprinted (or forced) platform, adjusted to the installation."""
    candidate = fp.candidate if fp.candidate is not None else "MOCK"
    CI = interfaces[candidate]
    CP = CI.get_params(candidate, gen_empty_fingerprint() | fp.fingerprint, list(fp.car_fw), alpha_long, False, False)
    CP.fingerprintSource = FINGERPRINT_SOURCES.get(fp.source, CarParams.FingerprintSource.can)
    CP.carVin = fp.vin
    CP.carFw = list(fp.car_fw)
    CP.fuzzyFingerprint = not fp.exact
    connected = setup.buses if setup.buses is not None else (fp.buses_seen or None)
    plan = CarPlan(CP, connected)
    how = "given" if setup.buses is not None else ("seen on the bus" if fp.buses_seen else "unknown: expecting all")
    plan.notes.append(f"platform {candidate} ({SOURCES[fp.source]}); connected buses {sorted(connected or [])} "
                      f"({how})")
    if fp.candidate is None:
        # dashcam mode: camera, model and logging go on; no controller is built and nothing is sent
        CP.dashcamOnly = True
        plan.notes.append("car not recognised: dashcam mode, nothing is sent (`--car` forces a platform)")

    if dsu_platform(candidate):
        seen = detect_dsu(fp)
        absent = setup.dsu == "absent" or (setup.dsu == "auto" and seen is False)
        if setup.dsu == "auto":
            why = {True: "DSU messages seen on bus 0", False: "no PRE_COLLISION/ACC_CONTROL from the car on bus 0",
                   None: "no CAN seen: assuming stock"}[seen]
        else:
            why = f"set to {setup.dsu}"
        if absent:
            apply_dsu_absent(CP, plan)
            plan.notes.append(f"DSU absent ({why}): roadpilot does longitudinal control, PRE_COLLISION not expected")
        else:
            plan.notes.append(f"DSU present ({why}): stock expectations, PRE_COLLISION expected")
    elif setup.dsu == "absent":
        plan.notes.append(f"--dsu absent ignored: {candidate} has no unpluggable DSU")
    return plan
