#!/usr/bin/env python3
"""Lockstep simulation throughput: how much faster than real time the whole stack drives, alone and in a sweep.

    python -m tools.bench.lockstep [--minutes 1] [--sweep-drives 4] [--sweep-minutes 0.5] [--workers 2]

1. One drive: `roadpilot eval`'s drive (the whole stack in lockstep, the scripted driver supervising, highway),
   --minutes of simulated time. Speed = simulated seconds / real seconds of the drive itself (simState's
   wallMonoTime span: the stack's start is not counted), and its CPU cost in cores per simulated second.
2. A sweep: --sweep-drives drives on --workers local workers (tools.sim.eval), from the first drive's start to the
   last one's end, starts included. Aggregate = simulated seconds of all drives / wall seconds of the sweep.

Targets (issue 23): one drive >= 2.5x real time; a sweep >= 5 simulated seconds per wall second on this 2-core
machine. The machine's other load is printed beside them: on a shared machine both fall with it.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import psutil

from tools.sim import eval as sim_eval
from tools.sim.lib.eval_drive import DriveSpec
from tools.sim.lib.sim_car import DEFAULT_PLATFORM

TARGET_ONE_X = 2.5
TARGET_SWEEP_X = 5.0


def one_drive(out: Path, minutes: float) -> dict:
    spec = DriveSpec("highway", 700000, DEFAULT_PLATFORM, minutes)
    r = sim_eval.run_drive(spec, out / spec.name)
    if r["status"] != "ok":
        raise SystemExit(f"bench lockstep: the drive failed: {r['reason']}")
    rep = r["report"]
    sim_s = rep["minutes"] * 60.0
    return {"sim_s": sim_s, "real_s": rep["wall_s"], "x_real_time": sim_s / rep["wall_s"],
            "cores": rep["cpu_total_cores"], "core_s_per_sim_s": rep["cpu_total_cores"] * rep["wall_s"] / sim_s,
            "per_process": rep["cpu_cores"], "engaged": rep["engaged_fraction_of_drive"]}


def sweep(out: Path, drives: int, minutes: float, workers: int) -> dict:
    specs = [DriveSpec(sc, 700000 + k, DEFAULT_PLATFORM, minutes)
             for k, sc in zip(range(drives), ["highway", "curvy", "straight", "cut_in"] * drives, strict=False)]
    t0 = time.monotonic()
    rows = sim_eval.sweep(specs, out, lambda todo, d: sim_eval.local_runner(todo, d, workers), progress=False)
    wall = time.monotonic() - t0
    ok = [r for _, r in rows if r["status"] == "ok"]
    sim_s = sum(r["report"]["minutes"] * 60.0 for r in ok)
    return {"drives": drives, "failed": drives - len(ok), "workers": workers, "sim_s": sim_s, "wall_s": wall,
            "sim_s_per_wall_s": sim_s / wall}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--sweep-drives", type=int, default=4)
    ap.add_argument("--sweep-minutes", type=float, default=0.5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args()
    out = Path(tempfile.mkdtemp(prefix="bench-lockstep-"))
    load0 = os.getloadavg()[0]
    psutil.cpu_percent()
    print(f"one lockstep drive, {args.minutes:g} simulated min ...", flush=True)
    one = one_drive(out / "one", args.minutes)
    print(f"a sweep of {args.sweep_drives} drives x {args.sweep_minutes:g} min on {args.workers} workers ...",
          flush=True)
    sw = sweep(out / "sweep", args.sweep_drives, args.sweep_minutes, args.workers)
    busy = psutil.cpu_percent() / 100 * psutil.cpu_count()
    print(f"one drive: {one['sim_s']:.0f} simulated s in {one['real_s']:.1f} s: {one['x_real_time']:.2f}x real time "
          f"(target >= {TARGET_ONE_X}: ratio {one['x_real_time'] / TARGET_ONE_X:.2f}); "
          f"{one['core_s_per_sim_s']:.2f} core-s per simulated s")
    print("  per process (cores while it drove): " + ", ".join(f"{k} {v:.2f}" for k, v in one["per_process"].items()))
    print(f"sweep: {sw['sim_s']:.0f} simulated s in {sw['wall_s']:.0f} s of wall time ({sw['failed']} failed): "
          f"{sw['sim_s_per_wall_s']:.2f} simulated s per wall s (target >= {TARGET_SWEEP_X}: ratio "
          f"{sw['sim_s_per_wall_s'] / TARGET_SWEEP_X:.2f})")
    print(f"machine: {psutil.cpu_count()} cores, load average {load0:.1f} at the start, {busy:.1f} cores busy on "
          f"average during the bench (this bench's drives included)")
    if args.json:
        Path(args.json).write_text(json.dumps({"one": one, "sweep": sw, "load_start": load0}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
