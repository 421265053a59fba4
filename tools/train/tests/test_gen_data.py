"""tools/train/gen_data.py: which episodes a config makes, and the close-following drivers of traffic_follow."""

import numpy as np

from tools.sim.lib.scenarios import SCENARIOS
from tools.train import gen_data
from tools.train.gen_data import CONFIGS, SPLIT_BASE, TRAFFIC, episodes, run_episode


def test_traffic_follow_makes_lead_scenarios_only_apart_from_the_other_configs():
    eps = episodes(CONFIGS["traffic_follow"])
    assert {name for _, name, _ in eps} == set(TRAFFIC) <= set(SCENARIOS)
    others = {(split, name, seed) for c in ("full", "full_follow") for split, name, seed in episodes(CONFIGS[c])}
    assert not others & set(eps)  # the same seed would mean the same road, look and mount: near-duplicates
    for split, _, seed in eps:
        assert SPLIT_BASE[split] <= seed < SPLIT_BASE[split] + 100000 - 1  # still inside its split's range
        assert seed < 300000  # the closed-loop tests' seeds stay unseen


def test_a_keep_lane_driver_stays_behind_the_stopping_lead():
    # a follow driver that may overtake leaves the stop_and_go lead within seconds (seed 16 did after 4.5 s)
    d = run_episode("train", "stop_and_go", 16, 15.0, follow=True, keep_lane=True)
    lead = d["lead"]
    assert lead[:, 2].all()                      # a lead in every sample
    assert lead[:, 0].min() < 12.0               # followed into the stop, close
    assert np.isclose(lead[:, 1].min(), 0.0, atol=0.5)  # the lead stood still at some point


def test_a_failing_episode_is_reported_and_the_others_are_written(tmp_path, monkeypatch, capsys):
    real = gen_data.run_episode

    def broken_curvy(split, scenario, *a, **kw):
        if scenario == "curvy":
            raise MemoryError("a lens with no inverse")
        return real(split, scenario, *a, **kw)
    monkeypatch.setattr(gen_data, "run_episode", broken_curvy)
    out = tmp_path / "d"
    assert gen_data.main(["--out", str(out), "--config", "tiny", "--jobs", "1", "--splits", "test"]) == 2
    err = capsys.readouterr()
    assert "curvy_200000.npz failed: MemoryError: a lens with no inverse" in err.out + err.err
    assert "1 of 9 episodes failed" in err.err
    written = sorted(p.name for p in (out / "test").glob("*.npz"))
    assert len(written) == 8 and "curvy_200000.npz" not in written
