"""hardwared: the machine's health as `deviceState` at 2 Hz (CPU, temperatures, memory, disk, thermal status).

`started` (onroad) mirrors the IsOnroad param, which the manager sets from its mode for now (device mode
stays offroad until ignition can be read from the car: that needs canbridged/card, not built yet).
"""

import math
import os
import shutil
import time

import psutil

from cereal import messaging
from common.params import Params
from common.paths import data_dir
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
HYSTERESIS_C = 5.0


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


def free_space_percent(path: str) -> float:
    """Free space of the filesystem that holds `path` (or would, once created: its nearest existing parent)."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    usage = shutil.disk_usage(path)
    return 100.0 * usage.free / usage.total if usage.total else 0.0


def uptime_s() -> float:
    # Boot time clock: time since boot including suspend, no wall clock involved.
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def clamp_percent(x: float) -> int:
    return max(0, min(100, round(x)))


def device_state(started: bool, temps: list[float], prev_status: str, data_path: str):
    """One `deviceState` Event from the current readings (psutil's CPU percentages are since the last call)."""
    msg = messaging.new_message("deviceState")
    ds = msg.deviceState
    ds.started = started
    ds.cpuUsagePercent = [clamp_percent(c) for c in psutil.cpu_percent(percpu=True)]
    ds.cpuTempC = temps
    ds.maxTempC = max(temps) if temps else 0.0
    ds.thermalStatus = thermal_status(max(temps) if temps else math.nan, prev_status)
    ds.memoryUsagePercent = clamp_percent(psutil.virtual_memory().percent)
    ds.freeSpacePercent = free_space_percent(data_path)
    ds.loadAvg1 = os.getloadavg()[0]
    ds.uptime = uptime_s()
    return msg


def main() -> None:
    cloudlog_bind(name="hardwared")
    params = Params()
    data_path = data_dir()
    pm = messaging.PubMaster(["deviceState"])
    psutil.cpu_percent(percpu=True)  # reference point for the first reading
    status = "green"
    if not cpu_temps():
        cloudlog.info("no temperature sensors readable: cpuTempC stays empty, thermalStatus green")
    rk = Ratekeeper(1.0 / DT_HW)
    while True:
        rk.keep_time()
        msg = device_state(params.get("IsOnroad"), cpu_temps(), status, data_path)
        new_status = str(msg.deviceState.thermalStatus)
        if new_status != status:
            cloudlog.warning(f"thermal status {status} -> {new_status}", extra={"maxTempC": msg.deviceState.maxTempC})
            status = new_status
        pm.send("deviceState", msg)


if __name__ == "__main__":
    main()
