"""The C safety layer (see README.md): opendbc's panda safety code for every brand, inside roadpilot's
fail-closed rules; the last word on every frame roadpilot sends to a car.

    safety = Safety(SafetyMode.TOYOTA, CP.safetyConfigs[0].safetyParam)
    safety.heartbeat(now_us)              # from controlsd, at least once a second
    safety.rx(addr, bus, data, now_us)    # every frame the car sends
    if safety.tx(addr, bus, data, now_us):
        send(...)                         # refused frames are dropped and counted

The C keeps one state per process, like a panda's firmware: creating a Safety re-initialises it, and
an older Safety object then refuses to be used. Set ROADPILOT_SAFETY_LIB to the path of another build
of the module (coverage, sanitizers, mutants) to load that one instead of the SCons build.
"""

import importlib.util
import os
import re
from enum import IntEnum
from types import ModuleType

from cereal import car


def _mode_name(enumerant: str) -> str:
    # hondaNidec -> HONDA_NIDEC, noOutput -> NO_OUTPUT, elm327 -> ELM327
    return re.sub(r"(?<!^)(?=[A-Z])", "_", enumerant).upper()


# Every value of opendbc's CarParams.SafetyModel, numbered like it (the C takes these numbers), named in
# upper case: SafetyMode["TOYOTA"], SafetyMode["NO_OUTPUT"]. Which ones the C accepts is the C's answer.
SafetyMode = IntEnum("SafetyMode", {_mode_name(n): v for n, v in car.CarParams.SafetyModel.schema.enumerants.items()})
SafetyMode.__doc__ = "opendbc's CarParams.SafetyModel values, names upper-cased."


def toyota_param(eps_scale: int = 73, alt_brake: bool = False, stock_longitudinal: bool = False) -> int:
    """opendbc's Toyota safetyParam: EPS torque scale in percent in the low byte, then ToyotaSafetyFlags."""
    from opendbc.car.toyota.values import ToyotaSafetyFlags
    if not 1 <= eps_scale <= 255:
        raise ValueError(f"eps_scale must be 1..255 percent, got {eps_scale}")
    flags = (ToyotaSafetyFlags.ALT_BRAKE.value if alt_brake else 0) | \
            (ToyotaSafetyFlags.STOCK_LONGITUDINAL.value if stock_longitudinal else 0)
    return eps_scale | flags


_module: ModuleType | None = None


def load_module() -> ModuleType:
    """The cffi extension: ROADPILOT_SAFETY_LIB's build if set, else the one SCons built in this folder."""
    global _module
    if _module is None:
        path = os.environ.get("ROADPILOT_SAFETY_LIB")
        if path:
            spec = importlib.util.spec_from_file_location("selfdrive.car.safety._safety", path)
            if spec is None or spec.loader is None:
                raise ImportError(f"ROADPILOT_SAFETY_LIB={path} is not an extension module")
            _module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(_module)
        else:
            try:
                from selfdrive.car.safety import _safety
            except ImportError as e:
                raise ImportError("the safety C module is not built: run `scons` in the repository root") from e
            _module = _safety
    return _module


class Safety:
    """One safety mode over the process's C state. Times are monotonic microseconds."""

    _active: "Safety | None" = None

    def __init__(self, mode: SafetyMode | int, param: int = 0):
        mod = load_module()
        self._ffi, self._lib = mod.ffi, mod.lib
        self.requested_mode = SafetyMode(mode)
        if not 0 <= param <= 0xFFFFFFFF:
            raise ValueError(f"safety param {param} is not a 32-bit unsigned number")
        self._reasons = [self._ffi.string(self._lib.rp_safety_reason_name(i)).decode()
                         for i in range(self._lib.RP_REASON_COUNT)]
        self.last_reason: str | None = None
        result = self._lib.rp_safety_set_mode(int(self.requested_mode), param)
        Safety._active = self
        if result != self._lib.RP_SET_OK:
            what = "unknown mode" if result == self._lib.RP_SET_UNKNOWN_MODE else f"param {param:#x} not supported"
            raise ValueError(f"safety mode {self.requested_mode.name}: {what}; the layer stays silent")

    def _check_active(self) -> None:
        if Safety._active is not self:
            raise RuntimeError("another Safety replaced this one: the C state is per process")

    @property
    def mode(self) -> SafetyMode:
        self._check_active()
        return SafetyMode(self._lib.rp_safety_get_mode())

    @property
    def param(self) -> int:
        self._check_active()
        return int(self._lib.rp_safety_get_param())

    @property
    def listen_only(self) -> bool:
        self._check_active()
        return bool(self._lib.rp_safety_listen_only())

    def rx(self, addr: int, bus: int, data: bytes, now_us: int) -> bool:
        """Feeds one frame the car sent. False when it was judged invalid or ignored (counted; last_reason)."""
        self._check_active()
        verdict = self._lib.rp_safety_rx(addr, bus, data, len(data), now_us)
        self.last_reason = None if verdict == 0 else self._reasons[verdict]
        return verdict == 0

    def tx(self, addr: int, bus: int, data: bytes, now_us: int) -> bool:
        """True when the frame may be sent. A refused frame is counted; last_reason says why."""
        self._check_active()
        verdict = self._lib.rp_safety_tx(addr, bus, data, len(data), now_us)
        self.last_reason = None if verdict == 0 else self._reasons[verdict]
        return verdict == 0

    def tx_verdict(self, addr: int, bus: int, data: bytes, now_us: int) -> str:
        """Like tx(), but returns "OK" or the name of the rule that refused the frame."""
        return "OK" if self.tx(addr, bus, data, now_us) else str(self.last_reason)

    def heartbeat(self, now_us: int) -> None:
        self._check_active()
        self._lib.rp_safety_heartbeat(now_us)

    @property
    def controls_allowed(self) -> bool:
        self._check_active()
        return bool(self._lib.rp_safety_controls_allowed())

    @property
    def relay_malfunction(self) -> bool:
        self._check_active()
        return bool(self._lib.rp_safety_relay_malfunction())

    @property
    def counters(self) -> dict:
        """rx_total, rx_refused {reason: n}, tx_total, tx_allowed, tx_blocked {reason: n} (non-zero only)."""
        self._check_active()
        c = self._ffi.new("rp_counters_t *")
        self._lib.rp_safety_get_counters(c)
        return {
            "rx_total": c.rx_total,
            "rx_refused": {r: n for r, n in zip(self._reasons, c.rx_refused, strict=True) if n},
            "tx_total": c.tx_total,
            "tx_allowed": c.tx_allowed,
            "tx_blocked": {r: n for r, n in zip(self._reasons, c.tx_blocked, strict=True) if n},
        }

    @property
    def car_state(self) -> dict:
        """What opendbc's rx hook tracked: cruise_engaged, gas_pressed, brake_pressed, vehicle_moving, speed
        (m/s), driver_torque and eps_torque (the brand's units)."""
        self._check_active()
        s = self._ffi.new("rp_car_state_t *")
        self._lib.rp_safety_get_car_state(s)
        return {
            "cruise_engaged": bool(s.cruise_engaged), "gas_pressed": bool(s.gas_pressed),
            "brake_pressed": bool(s.brake_pressed), "vehicle_moving": bool(s.vehicle_moving),
            "speed": s.speed_mm_s / 1000.0, "driver_torque": s.driver_torque, "eps_torque": s.eps_torque,
        }

    def _table(self, fetch) -> list[dict]:
        out, info = [], self._ffi.new("rp_msg_info_t *")
        while fetch(len(out), info):
            out.append({k: getattr(info, k) for k in ("addr", "bus", "len", "frequency", "check_relay", "checksum",
                                                      "max_counter")})
        return out

    @property
    def tx_table(self) -> list[dict]:
        """The mode's tx table: addr, bus, len, check_relay of every message it may send."""
        self._check_active()
        return self._table(self._lib.rp_safety_tx_msg_at)

    @property
    def rx_table(self) -> list[list[dict]]:
        """The mode's tracked rx messages (each a list of alternatives): addr, bus, len, frequency, checksum,
        max_counter."""
        self._check_active()
        out, info, i = [], self._ffi.new("rp_msg_info_t *"), 0
        while self._lib.rp_safety_rx_check_at(i, 0, info):
            out.append(self._table(lambda j, o, i=i: self._lib.rp_safety_rx_check_at(i, j, o)))
            i += 1
        return out

    def set_controls_allowed_for_tests(self, allowed: bool) -> None:
        """Tests only (opendbc's harness has the same): engage without the brand's cruise frames. The
        heartbeat rule still applies at the next rx/tx."""
        self._check_active()
        self._lib.rp_safety_test_set_controls_allowed(allowed)
