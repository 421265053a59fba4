"""The one table of params keys: each key's type, default and lifetime.

A key that is not declared here cannot be read or written (`Params` raises KeyError), so a typo
never silently creates a new key, and every reader agrees on how a value is encoded.

Lifetimes (`ParamFlag`): PERSISTENT keys live until something removes them; CLEAR_ON_MANAGER_START keys are
wiped by the manager when it starts (`Params.clear_all(flag)`), so a value from a previous run is never mistaken
for a current one. Every key is read by some daemon or tool (a test checks it): a value nobody reads is not kept.
"""

import enum
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class ParamType(enum.Enum):
    STR = "str"      # UTF-8 text
    BYTES = "bytes"  # raw bytes (e.g. a serialized capnp struct)
    INT = "int"      # decimal text
    FLOAT = "float"  # repr() text, round-trips exactly
    BOOL = "bool"    # "1" / "0"
    JSON = "json"    # any JSON document (dict, list, number, ...)


class ParamFlag(enum.IntFlag):
    PERSISTENT = enum.auto()
    CLEAR_ON_MANAGER_START = enum.auto()


P = ParamFlag
T = ParamType


MAX_BYTES = 64 * 1024  # no setting is bigger; a file past its key's cap is corrupt (and never read whole)


@dataclass(frozen=True)
class ParamKey:
    name: str
    type: ParamType
    flags: ParamFlag
    default: Any = None  # what `get` returns when the key is unset or its file is corrupt
    max_bytes: int = MAX_BYTES
    check: Callable[[Any], None] | None = None  # raises ValueError when a decoded value is not what writers write


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def check_calibration(raw: bytes) -> None:
    """The record calibrationd stores (selfdrive/locationd/calibration.py `Calibrator.to_bytes`): JSON
    {"rpy": 3 finite numbers, "blocks": pairs of finite numbers, "valid_blocks": a count}. Whether the
    angles are plausible is calibrationd's call; this is the shape any reader can rely on."""
    try:
        d = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise ValueError(f"not JSON: {str(e)[:80]}") from None
    if not isinstance(d, dict):
        raise ValueError("not a JSON object")
    rpy, blocks, valid = d.get("rpy"), d.get("blocks"), d.get("valid_blocks")
    if not (isinstance(rpy, list) and len(rpy) == 3 and all(_finite(v) for v in rpy)):
        raise ValueError(f"rpy is not 3 finite numbers: {str(rpy)[:60]}")
    if not (isinstance(blocks, list) and len(blocks) <= 1000
            and all(isinstance(b, list) and len(b) == 2 and all(_finite(v) for v in b) for b in blocks)):
        raise ValueError("blocks is not a list of finite (pitch, yaw) pairs")
    if not (isinstance(valid, int) and not isinstance(valid, bool) and 0 <= valid <= 1_000_000):
        raise ValueError(f"valid_blocks is not a count: {str(valid)[:30]}")


def check_torque_params(value: Any) -> None:
    """The record torqued stores (selfdrive/locationd/torque_estimator.py `to_json`): the car's fingerprint and
    finite numbers. Whether they are plausible for that car is torqued's call."""
    if not isinstance(value, dict) or not isinstance(value.get("car"), str):
        raise ValueError("not a JSON object with the car's fingerprint")
    for k in ("latAccelFactor", "latAccelOffset", "friction", "confidence", "points"):
        if not _finite(value.get(k)):
            raise ValueError(f"{k} is not a finite number: {str(value.get(k))[:30]}")


def check_one_of(*allowed: Any) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if value not in allowed:
            raise ValueError(f"{value!r:.30} is not one of {allowed}")
    return check


_KEYS = (
    # name                      type      lifetime                                                default
    # car identity: what card fingerprinted and published; rewritten every start
    ParamKey("CarParams",         T.BYTES, P.CLEAR_ON_MANAGER_START, max_bytes=4 * 1024 * 1024),
    # calibration and learned values survive reboots
    ParamKey("CalibrationParams", T.BYTES, P.PERSISTENT, check=check_calibration),
    ParamKey("LiveTorqueParameters", T.JSON, P.PERSISTENT, max_bytes=4096, check=check_torque_params),  # torqued
    # user settings
    # 0 aggressive, 1 standard, 2 relaxed
    ParamKey("LongitudinalPersonality", T.INT, P.PERSISTENT, 1, check=check_one_of(0, 1, 2)),
    ParamKey("ExperimentalMode",  T.BOOL,  P.PERSISTENT, False),
    # run state, owned by the manager and selfdrived (whose write of IsEngaged is how a disk that refuses writes
    # shows to the driver: "Settings Not Saved")
    ParamKey("IsOnroad",          T.BOOL,  P.CLEAR_ON_MANAGER_START, False),
    ParamKey("IsEngaged",         T.BOOL,  P.CLEAR_ON_MANAGER_START, False),
    ParamKey("ManagerMode",       T.STR,   P.CLEAR_ON_MANAGER_START),  # sim / replay / device
    # persisted values the manager found corrupt at start, moved aside and reset (selfdrived names them)
    ParamKey("ParamsReset",       T.JSON,  P.CLEAR_ON_MANAGER_START),
)

KEYS: dict[str, ParamKey] = {k.name: k for k in _KEYS}

_LIFETIME_FLAGS = ParamFlag.CLEAR_ON_MANAGER_START


def check_value(key: ParamKey, value: Any) -> Any:
    """Returns `value` normalised for `key`'s type; TypeError/ValueError says why it does not fit."""
    t = key.type
    ok = {
        T.STR: isinstance(value, str),
        T.BYTES: isinstance(value, bytes | bytearray | memoryview),
        T.INT: isinstance(value, int) and not isinstance(value, bool),
        T.FLOAT: isinstance(value, int | float) and not isinstance(value, bool),
        T.BOOL: isinstance(value, bool),
        T.JSON: True,  # checked by encoding it below
    }[t]
    if not ok:
        raise TypeError(f"param {key.name} holds {t.value}, got {type(value).__name__}: {value!r:.60}")
    if t is T.BYTES:
        value = bytes(value)
    if t is T.FLOAT:
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"param {key.name} holds a finite float, got {value!r}")
    if t is T.JSON:
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise type(e)(f"param {key.name} holds JSON; {value!r:.60} cannot be encoded: {e}") from None
    if key.check is not None:  # what a reader would refuse is never written
        try:
            key.check(value)
        except ValueError as e:
            raise ValueError(f"param {key.name}: {e}") from None
    return value


def _check_table() -> None:
    """Import-time sanity of the table itself, so a bad row fails at once, not in a daemon."""
    for k in _KEYS:
        lifetime = k.flags & (_LIFETIME_FLAGS | ParamFlag.PERSISTENT)
        if not lifetime:
            raise ValueError(f"param {k.name}: give it a lifetime (PERSISTENT or CLEAR_ON_*)")
        if ParamFlag.PERSISTENT in k.flags and k.flags & _LIFETIME_FLAGS:
            raise ValueError(f"param {k.name}: PERSISTENT and CLEAR_ON_* exclude each other")
        if k.default is not None:
            check_value(k, k.default)
    if len(KEYS) != len(_KEYS):
        raise ValueError("params_keys: a key is declared twice")


_check_table()
