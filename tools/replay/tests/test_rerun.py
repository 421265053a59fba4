"""tools/replay/rerun.py on a route whose outputs are known: the synthetic stack route with controlsd's own
lockstep outputs recorded in it (as a drive that was never late would have them)."""

import pytest

from cereal import messaging
from tests.process_replay.inputs import as_bytes, stack_route
from tests.process_replay.process_replay import config, replay
from tools.lib.make_route import write_route
from tools.replay.rerun import main, rerun


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("routes")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROADPILOT_PREFIX", "rerun-rec")
        mp.setenv("ROADPILOT_DATA", str(root / "data"))
        # the stack route carries a controlsState of its own (for selfdrived): the recording has controlsd's instead
        inputs = [d for d in as_bytes(stack_route(8.0)) if messaging.log_from_bytes(d).which() != "controlsState"]
        outputs = replay(config("controlsd"), inputs).outputs
    evs = sorted((messaging.log_from_bytes(d) for d in inputs + outputs), key=lambda e: e.logMonoTime)
    return write_route([e.as_builder() for e in evs], "recorded", root=str(root))


def test_a_drive_rerun_through_the_same_controlsd_matches_every_cycle(recorded):
    r = rerun(recorded, "controlsd")
    assert r.compared["carControl"] > 700 and r.share("carControl") == 1.0
    assert r.share("controlsState") == 1.0 and not r.unpaired


def test_a_changed_gain_shows_as_cycles_that_differ(recorded):
    r = rerun(recorded, "controlsd", env={"ROADPILOT_LOCKSTEP_SET": "selfdrive.controls.lib.latcontrol_torque:KP=2.0"})
    assert r.share("carControl") < 0.99  # the torque differs wherever the car steers (the curve from 4 s)
    assert r.worst["carControl"][0] == "carControl.actuators.torque"


def test_the_command_prints_the_shares_and_refuses_bad_input(recorded, tmp_path, capsys):
    assert main([recorded]) == 0
    assert "carControl: " in capsys.readouterr().out
    assert main([recorded, "--daemon", "nosuchd"]) == 2
    assert main([str(tmp_path / "missing")]) == 2
    assert "rerun:" in capsys.readouterr().err
