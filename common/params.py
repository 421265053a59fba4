"""Params: the typed key-value store on disk that every process shares (car params, calibration, settings).

One file per key under `params_dir()`; the keys, their types and defaults are declared in
`common/params_keys.py`. A write goes to a temp file in the same folder, which is fsynced, renamed over
the key's file, and then the folder is fsynced. Rename replaces the file in one step, so a reader in any
process sees the old value or the new one, never a mix — also when the writer is killed half way, or two
processes write the same key at once (the last rename wins). The fsyncs make the same hold after a power
cut. A killed writer leaves its temp file behind: readers never look at temp files, and `Params()` removes
those whose writer process is gone.

Reads never crash a daemon: an unset key gives its declared default; an unreadable or corrupt file (one
that does not decode as the key's type, fails the key's check, or is bigger than the key's cap, which is
never read whole) gives the default and one warning in the log per key and process.

Writes from a loop that must not stall on the disk (selfdrived, calibrationd) go through `put_nonblocking`:
a background thread writes the newest value of each key; a failed write (a full disk) is logged, counted
and kept in `failing` until that key is written again, and never raises into the caller.
"""

import contextlib
import copy
import json
import math
import os
import tempfile
import threading
import time
from typing import Any

from common.params_keys import KEYS, ParamFlag, ParamKey, ParamType, check_value
from common.paths import params_dir
from common.swaglog import cloudlog, log_due

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
                # put never writes NaN/Infinity (allow_nan=False): json.loads reads them, and 1e999 as inf
                return json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
            except RecursionError:
                raise ValueError("JSON nested too deeply") from None
    raise AssertionError(key.type)


def _refuse_constant(name: str):
    raise ValueError(f"non-finite JSON number {name}")


def _finite_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(f"non-finite JSON number {text[:20]}")
    return v


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


class CorruptParam(ValueError):
    """A key's file that is not a value of that key."""


class _BackgroundWriter:
    """One thread writing the newest pending value of each key, so a full or slow disk never stalls a loop."""

    def __init__(self, params: "Params"):
        self.params = params
        self.pending: dict[str, Any] = {}
        self.cv = threading.Condition()
        self.busy = False
        threading.Thread(target=self._run, name="params-writer", daemon=True).start()

    def put(self, key: str, value: Any) -> None:
        with self.cv:
            self.pending[key] = value
            self.cv.notify()

    def wait_idle(self, timeout: float) -> bool:
        with self.cv:
            return self.cv.wait_for(lambda: not self.pending and not self.busy, timeout)

    def _run(self) -> None:
        while True:
            with self.cv:
                self.cv.wait_for(lambda: self.pending)
                key, value = self.pending.popitem()
                self.busy = True
            try:
                self.params.put(key, value)
            except OSError as e:
                self.params._write_failed(key, e)
            else:
                self.params.failing.pop(key, None)
            finally:
                with self.cv:
                    self.busy = False
                    self.cv.notify_all()


class Params:
    def __init__(self, root: str | None = None):
        self.root = root if root is not None else params_dir()
        os.makedirs(self.root, exist_ok=True)
        self._remove_stale_temp_files()
        self.corrupt: dict[str, str] = {}   # key -> why, as first found by this instance
        self.failing: dict[str, str] = {}   # key -> error of its last background write, until one succeeds
        self.write_failures = 0             # failed background writes since start
        self._writer: _BackgroundWriter | None = None

    def get(self, key: str, block: bool = False, timeout: float | None = None) -> Any:
        """The value of `key`, or its declared default when unset, unreadable or corrupt.

        block=True waits (polling) until some process writes the key; `timeout` (seconds, only with
        block=True) bounds the wait, after which the default is returned. block=True without a timeout
        waits for as long as it takes.
        """
        k = self._key(key)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                return self._read(k)
            except CorruptParam as e:
                if k.name not in self.corrupt:  # one warning per key: a loop re-reading it must not flood the log
                    cloudlog.warning("param corrupt, using default", extra={"key": key, "type": k.type.value,
                                                                            "error": str(e)[:200]})
                self.corrupt[k.name] = str(e)
                return self._default(k)
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

    def _read(self, k: ParamKey) -> Any:
        """The decoded, checked value of `k`'s file. FileNotFoundError when unset, CorruptParam when not a value."""
        with open(os.path.join(self.root, k.name), "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > k.max_bytes:
                raise CorruptParam(f"{size} bytes, at most {k.max_bytes}")
            raw = f.read(k.max_bytes + 1)
        if len(raw) > k.max_bytes:  # grew since the fstat
            raise CorruptParam(f"over {k.max_bytes} bytes")
        try:
            value = decode(k, raw)
            if k.check is not None:
                k.check(value)
        except ValueError as e:
            raise CorruptParam(str(e)) from None
        return value

    def reset_corrupt(self, flag: ParamFlag = ParamFlag.PERSISTENT) -> dict[str, str]:
        """Moves every corrupt file of the keys carrying `flag` aside (to `.<key>.corrupt`, kept for a look),
        so they read as their defaults from now on; returns {key: why}. Never raises: the run goes on."""
        reset = {}
        for k in KEYS.values():
            if flag not in k.flags:
                continue
            try:
                self._read(k)
            except FileNotFoundError:
                continue
            except CorruptParam as e:
                reset[k.name] = str(e)
                try:
                    os.replace(os.path.join(self.root, k.name), os.path.join(self.root, f".{k.name}.corrupt"))
                except OSError as err:
                    cloudlog.error("corrupt param could not be moved aside", extra={"key": k.name, "error": str(err)})
                cloudlog.warning("param corrupt: reset to its default", extra={"key": k.name, "error": str(e)[:200]})
            except OSError as e:
                cloudlog.warning("param unreadable", extra={"key": k.name, "error": repr(e)})
        return reset

    def put_nonblocking(self, key: str, value: Any) -> None:
        """Writes `value` in the background (the newest value of a key wins). TypeError at once when it does
        not fit the key; a failed write is logged and kept in `failing`, never raised."""
        check_value(self._key(key), value)
        if self._writer is None:
            self._writer = _BackgroundWriter(self)
        self._writer.put(key, value)

    def wait_written(self, timeout: float = 5.0) -> bool:
        """Waits until every put_nonblocking so far has been attempted; False on timeout."""
        return self._writer is None or self._writer.wait_idle(timeout)

    def _write_failed(self, key: str, e: OSError) -> None:
        self.write_failures += 1
        self.failing[key] = e.strerror or str(e)
        n = self.write_failures
        if log_due(n):
            cloudlog.error("param write failed", extra={"key": key, "error": str(e), "failures_total": n})

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
