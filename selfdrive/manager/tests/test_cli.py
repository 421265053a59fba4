"""The `roadpilot` command line: honest about what is not built, and `sim` runs what exists."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from common.paths import routes_dir
from selfdrive.manager import cli
from selfdrive.manager.process_config import PLANNED


def test_sim_smoke_runs_records_and_lists_what_is_missing():
    r = subprocess.run([sys.executable, "-m", "selfdrive.manager.cli", "sim", "--seconds", "3"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "simulator is not built yet" in out
    for q in PLANNED:
        assert re.search(rf"not built yet\s+{q.name}\s", out), f"{q.name} missing from the not-built list"
    for name in ("logmessaged", "loggerd", "hardwared"):
        assert re.search(rf"built\s+{name}\s", out)
    routes = os.listdir(routes_dir())
    assert len(routes) == 1
    assert f"Recorded route: {os.path.join(routes_dir(), routes[0])}" in out
    counts = dict(re.findall(r"^\s+(deviceState|managerState)\s+(\d+)$", out, re.M))
    assert int(counts["deviceState"]) > 0 and int(counts["managerState"]) > 0


@pytest.mark.parametrize("command", ["replay", "device"])
def test_not_built_commands_fail_clearly(command, capsys):
    assert cli.main([command, "some-route"]) == 1
    assert f"roadpilot {command}: not built yet" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--scenario=highway", "--seed=3", "--minutes=2", "--lockstep", "--record"])
def test_future_sim_options_are_refused_not_ignored(option, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["sim", option])
    assert e.value.code == 2
    assert "is not built yet" in capsys.readouterr().err


@pytest.mark.parametrize("seconds", ["0", "-1", "nan", "abc"])
def test_bad_seconds(seconds, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["sim", "--seconds", seconds])
    assert e.value.code == 2


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert "sim" in err and "manager" in err and "ROADPILOT_PREFIX" in err


def test_manager_mode_is_checked(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["manager", "--mode", "track"])
    assert e.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_manager_command_runs_until_ctrl_c_in_device_mode():
    from cereal import messaging
    from common.params import Params
    sm = messaging.SubMaster(["managerState", "deviceState"])
    p = subprocess.Popen([sys.executable, "-m", "selfdrive.manager.cli", "manager", "--mode", "device"],
                         env={**os.environ, "ONLY": "hardwared"}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    try:
        deadline = time.monotonic() + 20
        while not sm.seen["deviceState"] and time.monotonic() < deadline:
            sm.update(200)
        assert sm.seen["deviceState"], "hardwared never published under the manager"
        assert sm["managerState"].mode == "device"
        assert sm["deviceState"].started is False  # device mode stays offroad until ignition can be read
        assert Params().get("ManagerMode") == "device"
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=15) == 0
    finally:
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=10)
