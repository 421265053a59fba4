"""roadpilot eval: a sweep of whole-stack drives on local workers and as Ray tasks, aggregated into one report.

Eight drives: seven real 3-second drives of the whole stack in lockstep (scenarios x seeds) and one that crashes
(a scenario that does not exist, past the command's own check: what a drive that dies in its worker looks like).
"""

import json
import os
import subprocess
import sys

import pytest

from tools.sim import eval as sim_eval
from tools.sim.lib.eval_drive import DriveSpec
from tools.sim.lib.sim_car import DEFAULT_PLATFORM

MINUTES = 0.05
SPECS = [DriveSpec(sc, seed, DEFAULT_PLATFORM, MINUTES) for sc, seed in
         (("highway", 600000), ("highway", 600001), ("curvy", 600000), ("straight", 600000),
          ("stop_and_go", 600000), ("cut_in", 600000), ("suburban", 600000))] + \
        [DriveSpec("no_such_road", 600000, DEFAULT_PLATFORM, MINUTES)]


def comparable(agg: dict) -> dict:
    """What two sweeps of the same drives must agree on. The drives are lockstep but their daemons still read
    their own clocks (SubMaster freshness), so an engagement may start a cycle apart: counts and distances agree,
    engaged time to a few control cycles."""
    out = {}
    for key, s in [("total", agg["total"]), *agg["scenarios"].items()]:
        out[key] = {k: (round(v, 2) if k == "km" else v) for k, v in s.items() if k != "engaged_share"}
    out["failed"] = agg["failed"]
    out["incidents"] = [(i["drive"], i["kind"]) for i in agg["incidents"]]
    return out


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    rows = sim_eval.sweep(SPECS, out, lambda todo, d: sim_eval.local_runner(todo, d, 2), progress=False)
    return out, rows, sim_eval.aggregate(rows)


def test_eight_drives_on_local_workers_are_each_reported_the_crash_with_its_reason(local_sweep):
    out, rows, agg = local_sweep
    assert [s.name for s, _ in rows] == [s.name for s in SPECS]
    t = agg["total"]
    assert t["drives"] == 8 and t["failed"] == 1
    assert agg["failed"] == [{"drive": "no_such_road-600000-" + DEFAULT_PLATFORM,
                              "reason": agg["failed"][0]["reason"]}]
    assert "unknown scenario 'no_such_road'" in agg["failed"][0]["reason"]
    # the seven real drives drove: 3 s each, on roads at 20-30 m/s (stop_and_go slower), engaged in most
    assert t["hours"] == pytest.approx(7 * MINUTES / 60, abs=1e-3)
    assert 0.2 < t["km"] < 7 * 3 * 32 / 1000
    assert t["engaged_share"] > 0.2
    assert t["collisions"] == 0 and t["lane_departures"] == 0
    for s, r in rows[:7]:
        assert r["status"] == "ok", r
        route = out / "drives" / s.name / r["route"]
        assert (route / "route.json").exists(), route  # the route stays, linked from the aggregate
        assert r["report"]["scenario"] == s.scenario and r["report"]["seed"] == s.seed


def test_the_same_sweep_as_ray_tasks_gives_the_same_aggregate(local_sweep, tmp_path):
    pytest.importorskip("ray")
    _, _, local_agg = local_sweep
    rows = sim_eval.sweep(SPECS, tmp_path, sim_eval.ray_runner("local", 2), progress=False)
    ray_agg = sim_eval.aggregate(rows)
    assert comparable(ray_agg) == comparable(local_agg)
    assert ray_agg["total"]["engaged_share"] == pytest.approx(local_agg["total"]["engaged_share"], abs=0.02)
    for s, r in rows[:7]:  # the route folders came back from the tasks
        assert (tmp_path / "drives" / s.name / r["route"] / "route.json").exists()


def test_a_resumed_sweep_keeps_the_drives_done_and_runs_the_failed_one_again(local_sweep, capsys):
    out, rows, _ = local_sweep
    done = {s.name: os.stat(out / "drives" / s.name / "result.json").st_mtime_ns for s, _ in rows[:7]}
    again = sim_eval.sweep(SPECS, out, lambda todo, d: sim_eval.local_runner(todo, d, 2), progress=False)
    assert "resuming: 7 of 8 drives already done" in capsys.readouterr().out
    assert {s.name: os.stat(out / "drives" / s.name / "result.json").st_mtime_ns for s, _ in again[:7]} == done
    assert again[7][1]["status"] == "failed"


def test_the_command_writes_the_report_and_refuses_another_sweeps_folder(local_sweep, tmp_path):
    out, _, agg = local_sweep
    sim_eval.write_outputs(out, agg, clips=False)
    page = (out / "index.html").read_text()
    assert "no_such_road-600000" in page and "unknown scenario" in page and "highway-600000" in page
    assert (out / "summary.png").stat().st_size > 1000
    assert json.loads((out / "aggregate.json").read_text())["total"]["drives"] == 8
    md = sim_eval.markdown(agg, "roadpilot eval --preset record")
    assert "| all | 8 | 1 |" in md and "interventions per 100 km" in md
    # the CLI: bad arguments and a folder holding another sweep are one-line errors, exit 2
    (tmp_path / "sweep.json").write_text(json.dumps({"drives": []}))
    for args, why in ((["--out", str(tmp_path), "--scenarios", "highway"], "holds another sweep"),
                      (["--out", str(tmp_path / "x"), "--scenarios", "moon"], "unknown scenario 'moon'"),
                      (["--out", str(tmp_path / "x"), "--cars", "DELOREAN"], "unknown simulated car")):
        p = subprocess.run([sys.executable, "-m", "tools.sim.eval", *args], capture_output=True, text=True)
        assert p.returncode == 2 and why in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
