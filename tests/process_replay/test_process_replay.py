"""Process replay in CI: every daemon that exists, as a real process in lockstep, reproduces its stored
reference outputs; what it subscribes/publishes agrees with what it declares; a deliberately changed
controller gain shows up as a readable diff, and the same code twice gives none. The real RAV4 minute
replays through card with the data set's speed."""

import numpy as np
import pytest

from cereal import messaging
from selfdrive.car.tests.helpers import DATA, SKIP_REASON, have_data, load_npy
from tests.process_replay.compare import compare, format_diff
from tests.process_replay.inputs import digest
from tests.process_replay.process_replay import (
    TIMING,
    DaemonConfig,
    available,
    config,
    declared,
    load_ref,
    replay,
    run_inputs,
)

CONFIGS = available()
REGEN = "python -m tests.process_replay.regen"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each daemon replayed once for the module (in its own prefix and data dir)."""
    cache: dict[str, tuple] = {}

    def get(cfg: DaemonConfig):
        if cfg.name not in cache:
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("ROADPILOT_PREFIX", f"pr-{cfg.name}")
                mp.setenv("ROADPILOT_DATA", str(tmp_path_factory.mktemp(cfg.name)))
                inputs = run_inputs(cfg)
                cache[cfg.name] = (inputs, replay(cfg, inputs))
        return cache[cfg.name]
    return get


def events(result) -> list:
    return [messaging.log_from_bytes(d) for d in result.outputs]


@pytest.mark.parametrize("cfg", CONFIGS, ids=[c.name for c in CONFIGS])
class TestReference:
    def test_outputs_match_the_reference(self, cfg, runs):
        inputs, result = runs(cfg)
        ref_digest, ref = load_ref(cfg.name)
        assert ref_digest == digest(inputs), f"{cfg.name}: the input route changed; run `{REGEN} {cfg.name}`"
        diff = format_diff(cfg.name, compare(ref, events(result), cfg.tolerance, TIMING + cfg.ignore))
        assert not diff, "\n".join([*diff, f"intended? regenerate with `{REGEN} {cfg.name}`"])

    def test_declared_services_are_what_its_sockets_do(self, cfg, runs):
        _, result = runs(cfg)
        subs, pubs = declared(cfg.module)
        assert pubs is not None, f"{cfg.module} declares no PUBLISHES; its sockets say {sorted(result.published)}"
        assert result.published == pubs  # `roadpilot replay --stack` holds these back: they must be what it does
        if subs is not None:
            assert result.subscribed == subs


@pytest.mark.skipif(config("controlsd") not in CONFIGS, reason="controlsd not built")
class TestChanges:
    def test_changed_controller_gain_is_a_readable_diff(self, runs, tmp_path):
        cfg = config("controlsd")
        inputs, _ = runs(cfg)
        changed = replay(cfg, inputs, env={"ROADPILOT_LOCKSTEP_SET": "selfdrive.controls.lib.latcontrol_torque:KP=2.0"})
        _, ref = load_ref("controlsd")
        diff = format_diff("controlsd", compare(ref, events(changed), cfg.tolerance, TIMING + cfg.ignore))
        text = "\n".join(diff)
        assert "controlsState.lateralP" in text and "carControl.actuators.torque" in text, text
        line = next(ln for ln in diff if "carControl.actuators.torque:" in ln)
        assert " messages differ, first #" in line and " -> " in line  # count, where, and the values

    def test_same_code_twice_gives_no_diff(self, runs):
        cfg = config("controlsd")
        inputs, first = runs(cfg)
        second = replay(cfg, inputs)
        assert not compare(events(first), events(second), 0.0, TIMING)
        # the clock is the recording's, so even the timestamps are the same
        assert first.outputs == second.outputs


@pytest.mark.skipif(not have_data(), reason=SKIP_REASON)
def test_real_rav4_through_card_in_lockstep(tmp_path):
    from tools.importers import comma2k19
    t, frames, _ = comma2k19.load_frames(str(DATA))
    inputs = [m.to_bytes() for m in comma2k19.can_messages(t, frames)][:2000]  # the first 20 s
    result = replay(config("card"), inputs, log_path=str(tmp_path / "card.log"), car="TOYOTA_RAV4")
    cs = [(e.logMonoTime * 1e-9, e.carState.vEgoRaw, e.carState.canValid) for e in events(result)
          if e.which() == "carState"]
    assert len(cs) == 2000  # one per `can` message, the 1 s fingerprint window's included (answered after it)
    cs = cs[100:]  # the window's answers all carry the time card answered them: the time test starts after it
    st, sv, valid = (np.array(x) for x in zip(*cs, strict=True))
    assert valid[100:].all()
    rt = load_npy(DATA / "processed_log" / "CAN" / "speed" / "t").reshape(-1)
    rv = load_npy(DATA / "processed_log" / "CAN" / "speed" / "value").reshape(-1)
    ok = (rt > st[0] + 1.0) & (rt < st[-1])
    k = np.searchsorted(st, rt[ok], side="left")  # the carState of the `can` message that carried the sample
    assert np.mean(np.abs(sv[k] - rv[ok]) <= 0.05) >= 0.99


def test_the_command_replays_every_daemon_side_by_side_without_a_diff(capsys):
    from tests.process_replay.process_replay import main
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [f"{c.name}: no diff" for c in CONFIGS]
    assert main(["nosuchd"]) == 2
    assert "no process replay config 'nosuchd'" in capsys.readouterr().err
