"""A data folder that is full from the start (the issue's 5 MB filesystem): nothing can be stored, not the params,
not the route, and still the stack identifies the car, engages and drives, and says the disk is full."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SIM_S = 40
# nothing stored: the camera's mounting is calibrated from nothing, which takes about 12 s of straight road (4 blocks
# of vanishing points, each from a picture that moved); the driver engages once it is done
CALIBRATING_S = 16


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare for a tmpfs of its own")
def test_a_disk_full_from_the_start_costs_the_recording_not_the_drive(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    user = [] if os.geteuid() == 0 else ["--map-root-user"]
    script = ('mount -t tmpfs -o size=4m fulldisk "$ROADPILOT_DATA" && '
              '(head -c 8M /dev/zero > "$ROADPILOT_DATA/filler" 2>/dev/null; true) && '
              f'exec "$0" -m tools.cli sim --lockstep --scenario straight --minutes {SIM_S / 60}')
    res = subprocess.run(["unshare", "--mount", "--propagation", "private", *user, "sh", "-c", script, sys.executable],
                         cwd=ROOT, env={**os.environ, "ROADPILOT_DATA": str(data)}, capture_output=True, text=True,
                         timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "No space left on device" in out  # it really was full
    assert "Logging Stopped: Disk Full" in out  # and the driver was told
    summary = json.loads(next(ln for ln in out.splitlines() if "bridge summary" in ln).split("bridge summary ", 1)[1])
    s = summary["summary"]
    assert s["t"] >= SIM_S and s["collision_steps"] == 0 and s["departure_steps"] == 0
    assert s["engaged_s"] > SIM_S - CALIBRATING_S, s
    adapter = json.loads(next(ln for ln in reversed(out.splitlines()) if "canbridged status " in ln)
                         .split("canbridged status ", 1)[1])["status"]
    assert adapter["mode"].startswith("toyota:") and s["car_refused"] == {}
    assert "Traceback" not in out, out[out.index("Traceback") - 500:][:3000]
