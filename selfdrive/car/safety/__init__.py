"""The C safety layer (see README.md): the last word on every frame roadpilot sends to a car.

    safety = Safety(SafetyMode.TOYOTA, toyota_param(eps_scale=73, alt_brake=True))
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
from enum import IntEnum
from types import ModuleType


class SafetyMode(IntEnum):
    """Safety mode ids, numbered like opendbc's CarParams.SafetyModel. The C ids are checked against
    this by tests/test_modes.py."""
    SILENT = 0
    TOYOTA = 2
    NO_OUTPUT = 19


class ToyotaFlags(IntEnum):
    ALT_BRAKE = 0x100           # brake pedal in 0x224 (RAV4 2017-18 and others), not 0x226
    STOCK_LONGITUDINAL = 0x200  # the stock DSU keeps longitudinal control: we may only cancel


def toyota_param(eps_scale: int = 73, alt_brake: bool = False, stock_longitudinal: bool = False) -> int:
    """The Toyota mode's param, laid out like opendbc's Toyota safetyParam."""
    if not 1 <= eps_scale <= 255:
        raise ValueError(f"eps_scale must be 1..255 percent, got {eps_scale}")
    flags = (ToyotaFlags.ALT_BRAKE if alt_brake else 0) | (ToyotaFlags.STOCK_LONGITUDINAL if stock_longitudinal else 0)
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
        result = self._lib.safety_set_mode(int(self.requested_mode), param)
        Safety._active = self
        self.last_reason: str | None = None
        if result != self._lib.SAFETY_SET_OK:
            what = "unknown mode" if result == self._lib.SAFETY_SET_UNKNOWN_MODE else f"param {param:#x} not supported"
            raise ValueError(f"safety mode {self.requested_mode.name}: {what}; the layer stays silent")
        self._reasons = [self._ffi.string(self._lib.safety_reason_name(i)).decode()
                         for i in range(self._lib.SAFETY_REASON_COUNT)]

    def _check_active(self) -> None:
        if Safety._active is not self:
            raise RuntimeError("another Safety replaced this one: the C state is per process")

    @property
    def mode(self) -> SafetyMode:
        self._check_active()
        return SafetyMode(self._lib.safety_get_mode())

    @property
    def listen_only(self) -> bool:
        self._check_active()
        return bool(self._lib.safety_listen_only())

    def rx(self, addr: int, bus: int, data: bytes, now_us: int) -> bool:
        """Feeds one frame the car sent. False when it was refused as invalid (counted)."""
        self._check_active()
        return self._lib.safety_rx(addr, bus, data, len(data), now_us) == 0

    def tx(self, addr: int, bus: int, data: bytes, now_us: int) -> bool:
        """True when the frame may be sent. A refused frame is counted; last_reason says why."""
        self._check_active()
        verdict = self._lib.safety_tx(addr, bus, data, len(data), now_us)
        self.last_reason = None if verdict == 0 else self._reasons[verdict]
        return verdict == 0

    def tx_verdict(self, addr: int, bus: int, data: bytes, now_us: int) -> str:
        """Like tx(), but returns "OK" or the name of the rule that refused the frame."""
        return "OK" if self.tx(addr, bus, data, now_us) else str(self.last_reason)

    def heartbeat(self, now_us: int) -> None:
        self._check_active()
        self._lib.safety_heartbeat(now_us)

    @property
    def controls_allowed(self) -> bool:
        self._check_active()
        return bool(self._lib.safety_controls_allowed())

    @property
    def relay_malfunction(self) -> bool:
        self._check_active()
        return bool(self._lib.safety_relay_malfunction())

    @property
    def counters(self) -> dict:
        """rx_total, rx_refused {reason: n}, tx_total, tx_allowed, tx_blocked {reason: n} (non-zero only)."""
        self._check_active()
        c = self._ffi.new("safety_counters_t *")
        self._lib.safety_get_counters(c)
        return {
            "rx_total": c.rx_total,
            "rx_refused": {r: n for r, n in zip(self._reasons, c.rx_refused, strict=True) if n},
            "tx_total": c.tx_total,
            "tx_allowed": c.tx_allowed,
            "tx_blocked": {r: n for r, n in zip(self._reasons, c.tx_blocked, strict=True) if n},
        }

    @property
    def car_state(self) -> dict:
        """What the rx hook tracked: cruise_engaged, gas_pressed, brake_pressed, speed (m/s),
        driver_torque, eps_torque."""
        self._check_active()
        s = self._ffi.new("safety_car_state_t *")
        self._lib.safety_get_car_state(s)
        return {
            "cruise_engaged": bool(s.cruise_engaged), "gas_pressed": bool(s.gas_pressed),
            "brake_pressed": bool(s.brake_pressed), "speed": s.speed_ckph / 360.0,
            "driver_torque": s.driver_torque, "eps_torque": s.eps_torque,
        }
