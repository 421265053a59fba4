"""hardwared: the machine's health as `deviceState` at 2 Hz (CPU, temperatures, memory, disk, thermal status).

Storage is watched where roadpilot writes (STORES: the params and the routes, which may sit on different
disks): free space every cycle, and a small write probe every PROBE_EVERY_S, because "free space" alone
misses a read-only remount, a quota or a dying card. `freeSpacePercent` is the fullest store's.

`started` (onroad) mirrors the IsOnroad param, which the manager sets from its mode (device mode stays offroad:
nothing reads the car's ignition yet, and no daemon waits for onroad).
"""

import contextlib
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from cereal import messaging
from common.params import Params
from common.paths import params_dir, routes_dir
from common.realtime import DT_HW, Ratekeeper
from common.swaglog import cloudlog, cloudlog_bind

# (status, enter at or above °C). Leaving a band takes HYSTERESIS_C less, so a temperature hovering
# at a threshold does not flap the status (and whatever later reacts to it) twice a second.
THERMAL_BANDS: tuple[tuple[str, float], ...] = (
    ("green", -math.inf),
    ("yellow", 80.0),
    ("red", 90.0),
    ("danger", 100.0),
)
PUBLISHES = ("deviceState",)
HYSTERESIS_C = 5.0
PROBE_EVERY_S = 5.0      # a write probe per store this often: a full disk is an alert within seconds
PROBE_BYTES = 4096       # one filesystem block: what the smallest params or log write needs


@dataclass(frozen=True)
class Store:
    name: str
    path: Callable[[], str]


STORES: tuple[Store, ...] = (Store("params", params_dir), Store("routes", routes_dir))


def thermal_status(max_temp_c: float, prev: str = "green") -> str:
    """The band of `max_temp_c`, staying in the higher `prev` band until HYSTERESIS_C below its threshold.

    No reading (NaN, e.g. a machine without sensors) keeps the previous status.
    """
    if math.isnan(max_temp_c):
        return prev
    names = [name for name, _ in THERMAL_BANDS]
    level = max(i for i, (_, enter) in enumerate(THERMAL_BANDS) if max_temp_c >= enter)
    prev_level = names.index(prev)
    if level < prev_level and max_temp_c >= THERMAL_BANDS[prev_level][1] - HYSTERESIS_C:
        level = prev_level
    return names[level]


def cpu_temps() -> list[float]:
    """Every CPU-ish sensor psutil can read, in °C; empty where there are none (VMs, containers)."""
    read = getattr(psutil, "sensors_temperatures", None)
    if read is None:
        return []
    try:
        sensors = read()
    except (OSError, RuntimeError):
        return []
    return [float(t.current) for entries in sensors.values() for t in entries if t.current is not None]


def existing_parent(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def free_space(path: str) -> tuple[float, int]:
    """(percent, bytes) free on the filesystem that holds `path` (or would, once created: its nearest existing
    parent). (0, 0) when it cannot be measured."""
    try:
        usage = shutil.disk_usage(existing_parent(path))
    except OSError:
        return 0.0, 0
    return (100.0 * usage.free / usage.total if usage.total else 0.0), usage.free


def probe_write(folder: str) -> str:
    """Writes, fsyncs and removes a PROBE_BYTES file in `folder` (created if missing); "" when that worked, else
    why not (the OS's words, e.g. "No space left on device")."""
    path = os.path.join(folder, f".probe.{os.getpid()}")
    try:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"\0" * PROBE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
        return ""
    except OSError as e:
        return e.strerror or str(e)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


class StorageWatch:
    """Each store's free space (every reading) and its last write probe's result (every PROBE_EVERY_S)."""

    def __init__(self, stores: tuple[Store, ...] = STORES, probe_every_s: float = PROBE_EVERY_S):
        self.stores = stores
        self.probe_every_s = probe_every_s
        self.errors = {s.name: "" for s in stores}
        self.probed_at = -math.inf

    def fill(self, ds, now: float) -> None:
        if now - self.probed_at >= self.probe_every_s:
            self.probed_at = now
            for s in self.stores:
                err = probe_write(s.path())
                if err != self.errors[s.name]:
                    log = cloudlog.error if err else cloudlog.info
                    log(f"storage {s.name}: " + (f"not writable: {err}" if err else "writable again"),
                        extra={"store": s.name, "path": s.path()})
                self.errors[s.name] = err
        out = ds.init("storage", len(self.stores))
        for o, s in zip(out, self.stores, strict=True):
            o.name, o.path = s.name, s.path()
            o.freeSpacePercent, o.freeBytes = free_space(s.path())
            o.writable, o.error = not self.errors[s.name], self.errors[s.name]
        ds.freeSpacePercent = min((o.freeSpacePercent for o in out), default=100.0)


def uptime_s() -> float:
    # Boot time clock: time since boot including suspend, no wall clock involved.
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def clamp_percent(x: float) -> int:
    return max(0, min(100, round(x)))


def device_state(started: bool, temps: list[float], prev_status: str, storage: StorageWatch, now: float):
    """One `deviceState` Event from the current readings (psutil's CPU percentages are since the last call)."""
    msg = messaging.new_message("deviceState")
    ds = msg.deviceState
    ds.started = started
    ds.cpuUsagePercent = [clamp_percent(c) for c in psutil.cpu_percent(percpu=True)]
    ds.cpuTempC = temps
    ds.maxTempC = max(temps) if temps else 0.0
    ds.thermalStatus = thermal_status(max(temps) if temps else math.nan, prev_status)
    ds.memoryUsagePercent = clamp_percent(psutil.virtual_memory().percent)
    storage.fill(ds, now)
    ds.loadAvg1 = os.getloadavg()[0]
    ds.uptime = uptime_s()
    return msg


def main() -> None:
    cloudlog_bind(name="hardwared")
    params = Params()
    storage = StorageWatch()
    pm = messaging.PubMaster(list(PUBLISHES))
    psutil.cpu_percent(percpu=True)  # reference point for the first reading
    status = "green"
    if not cpu_temps():
        cloudlog.info("no temperature sensors readable: cpuTempC stays empty, thermalStatus green")
    rk = Ratekeeper(1.0 / DT_HW, wall=True)  # deviceState is a slow input: on time in any world
    while True:
        rk.keep_time()
        msg = device_state(params.get("IsOnroad"), cpu_temps(), status, storage, time.monotonic())
        new_status = str(msg.deviceState.thermalStatus)
        if new_status != status:
            cloudlog.warning(f"thermal status {status} -> {new_status}", extra={"maxTempC": msg.deviceState.maxTempC})
            status = new_status
        pm.send("deviceState", msg)


if __name__ == "__main__":
    main()
