"""Params: the typed key-value store on disk that every process shares (car params, calibration, settings).

One file per key under `params_dir()`; the keys, their types and defaults are declared in
`common/params_keys.py`. A write goes to a temp file in the same folder, which is fsynced, renamed over
the key's file, and then the folder is fsynced. Rename replaces the file in one step, so a reader in any
process sees the old value or the new one, never a mix — also when the writer is killed half way, or two
processes write the same key at once (the last rename wins). The fsyncs make the same hold after a power
cut. A killed writer leaves its temp file behind: readers never look at temp files, and `Params()` removes
those whose writer process is gone.

Reads never crash a daemon: an unset key gives its declared default; an unreadable or corrupt file gives
the default and a warning in the log.
"""

import contextlib
import copy
import json
import math
import os
import tempfile
import time
from typing import Any

from common.params_keys import KEYS, ParamFlag, ParamKey, ParamType, check_value
from common.paths import params_dir
from common.swaglog import cloudlog

POLL_S = 0.02  # how often a blocking get looks for the key
_TMP_SUFFIX = ".tmp"  # temp files are ".<key>.<pid>.<random>.tmp": hidden, and name their writer


def encode(key: ParamKey, value: Any) -> bytes:
    """The file contents for `value` (already checked by `check_value`)."""
    match key.type:
        case ParamType.STR:
            return value.encode()
        case ParamType.BYTES:
            return bytes(value)
        case ParamType.INT:
            return str(value).encode()
        case ParamType.FLOAT:
            return repr(float(value)).encode()
        case ParamType.BOOL:
            return b"1" if value else b"0"
        case ParamType.JSON:
            return json.dumps(value, allow_nan=False, separators=(",", ":")).encode()
    raise AssertionError(key.type)


def decode(key: ParamKey, raw: bytes) -> Any:
    """The typed value of a file's contents; ValueError when they do not parse as the key's type."""
    match key.type:
        case ParamType.STR:
            return raw.decode()
        case ParamType.BYTES:
            return raw
        case ParamType.INT:
            return int(raw)
        case ParamType.FLOAT:
            v = float(raw)
            if not math.isfinite(v):  # put never writes these
                raise ValueError(f"non-finite float {raw!r}")
            return v
        case ParamType.BOOL:
            if raw.strip() not in (b"0", b"1"):
                raise ValueError(f"not a bool: {raw[:20]!r}")
            return raw.strip() == b"1"
        case ParamType.JSON:
            try:
                return json.loads(raw)
            except RecursionError:
                raise ValueError("JSON nested too deeply") from None
    raise AssertionError(key.type)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


class Params:
    def __init__(self, root: str | None = None):
        self.root = root if root is not None else params_dir()
        os.makedirs(self.root, exist_ok=True)
        self._remove_stale_temp_files()

    def get(self, key: str, block: bool = False, timeout: float | None = None) -> Any:
        """The value of `key`, or its declared default when unset, unreadable or corrupt.

        block=True waits (polling) until some process writes the key; `timeout` (seconds, only with
        block=True) bounds the wait, after which the default is returned. block=True without a timeout
        waits for as long as it takes.
        """
        k = self._key(key)
        path = os.path.join(self.root, key)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                with open(path, "rb") as f:
                    raw = f.read()
                break
            except FileNotFoundError:
                if not block:
                    return self._default(k)
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    cloudlog.warning("param not written before timeout, using default",
                                     extra={"key": key, "timeout_s": timeout})
                    return self._default(k)
                time.sleep(POLL_S if left is None else min(POLL_S, left))
            except OSError as e:
                cloudlog.warning("param unreadable, using default", extra={"key": key, "error": repr(e)})
                return self._default(k)
        try:
            return decode(k, raw)
        except ValueError as e:
            cloudlog.warning("param corrupt, using default",
                             extra={"key": key, "type": k.type.value, "error": str(e)[:200], "size": len(raw)})
            return self._default(k)

    def put(self, key: str, value: Any) -> None:
        """Writes `value` atomically and durably. TypeError when it does not fit the key's declared type."""
        k = self._key(key)
        data = encode(k, check_value(k, value))
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.{os.getpid()}.", suffix=_TMP_SUFFIX, dir=self.root)
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o644)  # mkstemp makes 0600; params are not secrets
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, os.path.join(self.root, key))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._fsync_dir()

    def remove(self, key: str) -> None:
        self._key(key)
        if self._unlink(key):
            self._fsync_dir()

    def clear_all(self, flag: ParamFlag | None = None) -> None:
        """Removes every declared key carrying `flag` (every declared key when None)."""
        removed = [self._unlink(k.name) for k in KEYS.values() if flag is None or flag in k.flags]
        if any(removed):
            self._fsync_dir()

    @staticmethod
    def _key(key: str) -> ParamKey:
        try:
            return KEYS[key]
        except (KeyError, TypeError):
            raise KeyError(f"unknown param {key!r}: declare it in common/params_keys.py") from None

    @staticmethod
    def _default(k: ParamKey) -> Any:
        return copy.deepcopy(k.default) if k.type is ParamType.JSON else k.default

    def _unlink(self, key: str) -> bool:
        try:
            os.unlink(os.path.join(self.root, key))
            return True
        except FileNotFoundError:
            return False

    def _fsync_dir(self) -> None:
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _remove_stale_temp_files(self) -> None:
        """Temp files of writers that died mid-put. Live writers' files are left alone."""
        with os.scandir(self.root) as it:
            names = [e.name for e in it if e.name.startswith(".") and e.name.endswith(_TMP_SUFFIX)]
        for name in names:
            parts = name.split(".")  # ["", key, pid, random, "tmp"]
            if len(parts) != 5 or not parts[2].isdigit():
                continue  # not one of ours
            pid = int(parts[2])
            if pid != os.getpid() and not _pid_alive(pid):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.root, name))
