"""tools/replay/rerun.py on a route whose outputs are known: the synthetic stack route with controlsd's own
lockstep outputs recorded in it (as a drive that was never late would have them)."""

import pytest

from cereal import messaging
from selfdrive.loggerd.route import RouteError
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


def _late_frames(inputs: list[bytes]) -> list[bytes]:
    """`inputs` with every model frame and plan delivered after the carState that follows it (a live controlsd on a
    busy machine)."""
    out, held = [], []
    for d in inputs:
        which = messaging.log_from_bytes(d).which()
        if which in ("modelV2", "longitudinalPlan"):
            held.append(d)
            continue
        out.append(d)
        if which == "carState":
            out += held
            held = []
    return out + held


def _zero_used_fields(ev):
    b = ev.as_builder()
    if ev.which() == "controlsState":
        b.controlsState.longitudinalPlanMonoTime = 0
        b.controlsState.modelV2MonoTime = 0
        b.controlsState.selfdriveStateMonoTime = 0
    return b


def test_a_model_frame_and_plan_that_came_late_live_come_late_in_the_rerun(tmp_path_factory):
    root = tmp_path_factory.mktemp("late")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROADPILOT_PREFIX", "rerun-late")
        mp.setenv("ROADPILOT_DATA", str(root / "data"))
        inputs = [d for d in as_bytes(stack_route(8.0)) if messaging.log_from_bytes(d).which() != "controlsState"]
        outputs = replay(config("controlsd"), _late_frames(inputs)).outputs
    evs = sorted((messaging.log_from_bytes(d) for d in inputs + outputs), key=lambda e: e.logMonoTime)
    # the route logs every message by its own time, so in it each frame and plan comes before the carState it missed
    route = write_route([e.as_builder() for e in evs], "late", root=str(root))
    r = rerun(route, "controlsd")
    assert r.compared["carControl"] > 700 and r.share("carControl") == 1.0
    # what makes it so: controlsState names the frame and plan each cycle had; without that the recorded order is
    # replayed
    blind = write_route([_zero_used_fields(e) for e in evs], "blind", root=str(root))
    assert rerun(blind, "controlsd").share("carControl") < 0.99


def _controls_state(t: int, car_state: int, selfdrive_state: int):
    msg = messaging.new_message("controlsState")
    msg.logMonoTime = t
    msg.controlsState.carStateMonoTime = car_state
    msg.controlsState.selfdriveStateMonoTime = selfdrive_state
    return messaging.log_from_bytes(msg.to_bytes())


def test_a_cycle_is_the_carstate_it_answered_not_the_last_one_logged_before_it():
    # a live controlsd that answered carState@100 late, after carState@102 was logged (start-up on a loaded
    # machine): that cycle had selfdriveState@101, so the re-run must get it before carState@100
    from tools.replay.rerun import USED_INPUTS, as_used
    inputs = [("carState", 100, b"c100"), ("selfdriveState", 101, b"s101"), ("carState", 102, b"c102")]
    late = {"controlsState": [_controls_state(103, 100, 101)]}
    assert [d for _, _, d in as_used(inputs, late, *USED_INPUTS["controlsd"])] == [b"s101", b"c100", b"c102"]
    # a route from before the field: by time, the cycle of carState@102
    old = {"controlsState": [_controls_state(103, 0, 101)]}
    assert [d for _, _, d in as_used(inputs, old, *USED_INPUTS["controlsd"])] == [b"c100", b"s101", b"c102"]


@pytest.mark.parametrize("text", [b"{not json", b"[" * 100_000])
def test_a_route_json_that_cannot_say_how_the_daemons_were_paced_is_refused(tmp_path, text, capsys):
    route = write_route(stack_route(1.0), "r", root=str(tmp_path))
    with open(f"{route}/route.json", "wb") as f:
        f.write(text)
    with pytest.raises(RouteError, match="route.json: unreadable"):
        rerun(route, "controlsd")  # before any daemon starts
    assert main([route]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "unreadable" in err


def test_card_on_an_imported_drive_runs_as_its_car_and_says_there_is_nothing_to_compare(tmp_path, capsys):
    # an importer's route: `can` only, the car in route.json (a HONDA would fail to read a RAV4's bus)
    from tools.replay.tests.test_replay import rav4_drive
    route = write_route(rav4_drive(1.5), "imported", root=str(tmp_path), meta={"car": "TOYOTA_RAV4"})
    r = rerun(route, "card")
    assert not r.compared and r.unpaired["carState"] == 150  # one per `can`: the car was read, nothing recorded
    assert main([route, "--daemon", "card"]) == 1
    err = capsys.readouterr().err
    assert "rerun: nothing to compare" in err and "carState" in err


def test_card_takes_the_car_from_route_json_and_refuses_an_unknown_one(tmp_path, capsys):
    from tools.replay.tests.test_replay import rav4_drive
    route = write_route(rav4_drive(0.5), "nope", root=str(tmp_path), meta={"car": "TOYOTA_NOPE"})
    assert main([route, "--daemon", "card"]) == 2
    assert "unknown platform 'TOYOTA_NOPE'" in capsys.readouterr().err
