"""The UI port a run picks when none is given: free, and never the one another run picked a moment before."""

import subprocess
import sys

from selfdrive.ui.config import PORT_ENV, with_free_port

HOLD = ("import sys, time; from selfdrive.ui.config import with_free_port; "
        "print(with_free_port({})['ROADPILOT_UI_PORT'], flush=True); sys.stdin.read()")


def test_runs_started_together_get_different_ports_though_no_uid_has_bound_yet():
    # another run (its own process) picked a port and holds it while its uid is still starting
    other = subprocess.Popen([sys.executable, "-c", HOLD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        theirs = int(other.stdout.readline())
        mine = [int(with_free_port({})[PORT_ENV]) for _ in range(2)]
        assert theirs not in mine and mine[0] != mine[1]
    finally:
        other.stdin.close()
        other.wait(timeout=10)
    # its claim ends with it, however it ends
    again = subprocess.run([sys.executable, "-c", HOLD], input="", capture_output=True, text=True, timeout=30)
    assert int(again.stdout) == theirs


def test_a_given_port_is_kept():
    assert with_free_port({PORT_ENV: "9999"})[PORT_ENV] == "9999"
