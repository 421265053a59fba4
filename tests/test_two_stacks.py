"""Two stacks at once on one data folder, told apart by ROADPILOT_PREFIX alone (no UI port, no route given): both
drive and engage, each picks its own UI port, and each `roadpilot sim` reports its own drive (the issue saw the
second uid crash-loop on a shared port and one run print the other's report).

Both drives are shorter than card's 50 s carParams period, so they also check that a short route holds carParams and
its report names the car; the second one is cut in 10 s segments, each of which must start with carParams (loggerd
writes the latched services at every segment's start)."""

import json
import os
import re
import subprocess
import sys

from common.paths import routes_dir
from selfdrive.loggerd.logreader import LogReader
from selfdrive.loggerd.route import Route
from selfdrive.ui.config import PORT_ENV
from tools.sim.lib.sim_car import DEFAULT_PLATFORM as SIM_CAR  # the simulated car, identified by its firmware
from tools.sim.lib.stack_drive import store_calibration

RUNS = (("a", "straight", 300_200), ("b", "curvy", 300_201))  # (prefix suffix, scenario, seed): not tuning seeds
SEGMENT_SECONDS = {"a": "60", "b": "10"}  # b: a route of 3 segments or more (its wall time and start-up)


def test_two_stacks_with_only_their_prefix_apart_both_drive_and_report_their_own_drive(tmp_path, monkeypatch):
    monkeypatch.delenv(PORT_ENV, raising=False)
    prefix = os.environ["ROADPILOT_PREFIX"]
    procs = {}
    for suffix, scenario, seed in RUNS:
        monkeypatch.setenv("ROADPILOT_PREFIX", prefix + suffix)
        store_calibration()  # each prefix has its own params: a car calibrated on an earlier drive
        # encoderd (video) is left out: two whole stacks share 2 cores
        env = {**os.environ, "BLOCK": "encoderd", "ROADPILOT_SEGMENT_SECONDS": SEGMENT_SECONDS[suffix]}
        procs[suffix] = subprocess.Popen(
            [sys.executable, "-m", "tools.cli", "sim", "--scenario", scenario, "--seed", str(seed),
             "--minutes", "0.4", "--lockstep"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    outs = {s: p.communicate(timeout=400)[0] for s, p in procs.items()}
    for s, p in procs.items():
        assert p.returncode == 0, outs[s][-4000:]

    urls, routes = {}, {}
    for suffix, scenario, seed in RUNS:
        out = outs[suffix]
        urls[suffix] = re.search(r"Onroad UI: (\S+)", out).group(1)
        routes[suffix] = re.search(r"Report written next to the route: (\S+)/report\.json", out).group(1)
        report = json.loads(open(os.path.join(routes[suffix], "report.json")).read())
        # its own drive, whole: scenario and seed of this run, its simulated length, engaged by the stack
        assert (report["scenario"], report["seed"]) == (scenario, seed), out[-3000:]
        assert abs(report["minutes"] - 0.4) < 0.01
        assert report["first_engaged_t"] is not None and report["engaged_fraction"] > 0.9, out[-3000:]
        assert report["car"] == SIM_CAR and f"Drive report: {scenario} (seed {seed}, car {SIM_CAR})" in out
        # card's first carParams is in the first segment; every later segment starts with a copy of the newest
        segments = Route(routes[suffix]).segments
        assert suffix == "a" or len(segments) >= 2, segments
        for seg in segments:
            evs = list(LogReader(seg.path))
            cars = {e.carParams.carFingerprint for e in evs if e.which() == "carParams"}
            assert cars == {SIM_CAR} and (seg.number == 0 or evs[0].which() == "carParams"), (seg, cars)
        # its uid ran (no crash loop on a taken port), and nothing of the run died
        assert "uid" in report["cpu_cores"] and report["restarts"] == {}, (report["cpu_cores"], report["restarts"])
    assert urls["a"] != urls["b"]
    assert routes["a"] != routes["b"]
    assert sorted(os.listdir(routes_dir())) == sorted(os.path.basename(r) for r in routes.values())
