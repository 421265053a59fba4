"""hardwared: the thermal status table, the deviceState it builds, and the daemon itself."""

import math
import shutil
import subprocess
import sys
import time

import psutil
import pytest

from cereal import messaging
from common.params import Params
from hardware.hardwared import (
    HYSTERESIS_C,
    THERMAL_BANDS,
    StorageWatch,
    Store,
    device_state,
    free_space,
    thermal_status,
)


class TestThermalStatus:
    @pytest.mark.parametrize("temp, status", [(-10.0, "green"), (45.0, "green"), (79.9, "green"), (80.0, "yellow"),
                                              (89.9, "yellow"), (90.0, "red"), (100.0, "danger"), (150.0, "danger")])
    def test_bands_when_rising(self, temp, status):
        assert thermal_status(temp, "green") == status

    def test_hysteresis_holds_a_band_until_well_below_it(self):
        red_at = dict(THERMAL_BANDS)["red"]
        assert thermal_status(red_at - HYSTERESIS_C + 0.1, "red") == "red"
        assert thermal_status(red_at - HYSTERESIS_C - 0.1, "red") == "yellow"
        assert thermal_status(30.0, "danger") == "green"  # a big drop goes straight down

    def test_no_reading_keeps_the_previous_status(self):
        assert thermal_status(math.nan, "red") == "red"

    def test_bands_ascend(self):
        enters = [t for _, t in THERMAL_BANDS]
        assert enters == sorted(enters) and len(set(enters)) == len(enters)


def test_free_space_of_a_data_dir_not_created_yet(tmp_path):
    missing = tmp_path / "not" / "yet"
    u = shutil.disk_usage(tmp_path)
    got = free_space(str(missing))[0]
    assert 0.0 < got <= 100.0
    assert got == pytest.approx(100.0 * u.free / u.total, abs=1.0)


@pytest.mark.parametrize("started", [True, False])
def test_device_state_fields(tmp_path, started):
    psutil.cpu_percent(percpu=True)
    ds = device_state(started, [], "green", StorageWatch(), 0.0).deviceState
    assert ds.started is started
    assert len(ds.cpuUsagePercent) == psutil.cpu_count()
    assert all(0 <= c <= 100 for c in ds.cpuUsagePercent)
    assert list(ds.cpuTempC) == [] and ds.maxTempC == 0.0 and str(ds.thermalStatus) == "green"
    assert 0 < ds.memoryUsagePercent <= 100
    assert ds.uptime > 0 and ds.loadAvg1 >= 0


def test_device_state_with_hot_sensors(tmp_path):
    ds = device_state(True, [60.0, 93.5], "green", StorageWatch(), 0.0).deviceState
    assert list(ds.cpuTempC) == [60.0, 93.5] and ds.maxTempC == 93.5 and str(ds.thermalStatus) == "red"


def test_storage_watch_reports_each_store_and_a_failed_write_probe(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"x")
    good, bad = tmp_path / "routes", blocker / "params"  # a folder under a file: no write can succeed there
    watch = StorageWatch((Store("params", lambda: str(bad)), Store("routes", lambda: str(good))), probe_every_s=5.0)
    ds = messaging.new_message("deviceState").deviceState
    watch.fill(ds, now=0.0)
    by_name = {s.name: s for s in ds.storage}
    assert not by_name["params"].writable and "Not a directory" in by_name["params"].error
    assert by_name["routes"].writable and by_name["routes"].error == "" and by_name["routes"].freeBytes > 0
    assert ds.freeSpacePercent == min(s.freeSpacePercent for s in ds.storage)
    assert sorted(p.name for p in good.iterdir()) == []  # the probe leaves nothing behind
    blocker.unlink()
    watch.fill(ds, now=1.0)  # probes only every probe_every_s: still the old verdict
    assert not {s.name: s for s in ds.storage}["params"].writable
    watch.fill(ds, now=5.0)
    assert all(s.writable for s in ds.storage)


def test_daemon_publishes_with_the_onroad_param():
    Params().put("IsOnroad", True)
    sm = messaging.SubMaster(["deviceState"])
    p = subprocess.Popen([sys.executable, "-m", "hardware.hardwared"], stderr=subprocess.DEVNULL)
    try:
        got = []
        deadline = time.monotonic() + 20
        while len(got) < 4 and time.monotonic() < deadline:
            sm.update(200)
            if sm.updated["deviceState"]:
                got.append(sm["deviceState"].started)
        assert got == [True] * 4, "hardwared did not publish, or not the IsOnroad param"
    finally:
        p.terminate()
        p.wait(timeout=10)
