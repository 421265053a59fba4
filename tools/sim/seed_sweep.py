"""Drives scenarios x seeds one after another with the whole stack (lockstep, as the closed-loop tests do) and
prints each drive's figures and a summary per scenario: how many drives meet the report's thresholds, the
supervising driver's takeovers (and how many for drifting), lateral error, steering oscillation, lateral jerk and
torqued's estimate. Seeds for an honest figure are ones nothing was tuned on (the closed-loop tests use 300000..).

  python -m tools.sim.seed_sweep --scenarios highway,suburban --first-seed 400000 --count 5
  python -m tools.sim.seed_sweep --scenarios highway --steer-gain 2 --minutes 3    # a car unlike its parameters

Each drive keeps its route and report under OUT/<scenario>-<seed>/ (default: a new folder in /tmp); a drive that
fails to run is reported as such, never dropped.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from tools.sim.lib.drive_report import DriveReport
from tools.sim.lib.scenarios import SCENARIOS
from tools.sim.lib.simulation import SimConfig, add_camera_args, add_steer_args, variant
from tools.sim.lib.stack_drive import Drive


def drive_one(out: Path, scenario: str, seed: int, minutes: float, steer: dict) -> tuple[DriveReport | None, str]:
    """(the drive's report, "") or (None, why it did not run to the end)."""
    folder = out / f"{scenario}-{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["ROADPILOT_DATA"] = str(folder / "data")  # its own params and routes: Drive reads the one route
    try:
        with Drive(folder, scenario, seed, minutes * 60.0, **steer) as d:
            r = d.drive()
        r.save(str(folder))
        return r, ""
    except Exception as e:  # noqa: BLE001 - a sweep reports a failed drive and goes on with the next
        return None, f"{type(e).__name__}: {str(e)[:200]}"


def takeovers(r: DriveReport) -> tuple[int, int]:
    """(the supervising driver's takeovers, of those for drifting)."""
    why = [d.driver for d in r.disengagements if d.driver]
    return len(why), sum("drifting" in w for w in why)


def line(scenario: str, seed: int, r: DriveReport | None, err: str) -> str:
    if r is None:
        return f"{scenario:12s} {seed:7d}  FAILED TO RUN: {err}"
    n, drift = takeovers(r)
    short = r.verdict()
    st = r.steering
    learnt = "n/a" if st is None else f"{st.lat_accel_factor:.2f} ({st.source}, {st.confidence:.0%})"
    fmt = lambda v, f: "n/a" if v is None else format(v, f)  # noqa: E731
    return (f"{scenario:12s} {seed:7d}  {'ok' if not short else 'SHORT':5s} takeovers {n} (drifting {drift})  "
            f"lat err {fmt(r.lat_err_mean_m, '.2f')} m  osc {fmt(r.steer_osc_rms, '.3f')}  "
            f"lat jerk {fmt(r.max_lat_jerk, '.1f')}  engaged {r.engaged_fraction:.0%}  torqued {learnt}"
            + (f"  [{'; '.join(short)}]" if short else ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.sim.seed_sweep", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default="highway,curvy,suburban,stop_and_go,cut_in",
                    help="comma-separated (default: %(default)s)")
    ap.add_argument("--first-seed", type=int, default=400_000, help="default: %(default)s")
    ap.add_argument("--count", type=int, default=5, help="seeds per scenario (default: %(default)s)")
    ap.add_argument("--minutes", type=float, default=1.0, help="simulated minutes per drive (default: %(default)s)")
    ap.add_argument("--out", help="folder for the drives' routes and reports (default: a new one in /tmp)")
    ap.add_argument("--json", help="also write every drive's figures to this file")
    add_steer_args(ap)
    add_camera_args(ap)
    args = ap.parse_args(argv)
    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown or args.count < 1 or not 0 < args.minutes <= 60:
        why = f"unknown scenarios {unknown} (known: {', '.join(SCENARIOS)})" if unknown else \
            "--count must be >= 1 and --minutes in (0, 60]"
        print(f"seed_sweep: {why}", file=sys.stderr)
        return 2
    steer = variant(args)
    try:
        SimConfig(**steer)  # the same checks a drive makes, before the first one starts
    except ValueError as e:
        print(f"seed_sweep: {e}", file=sys.stderr)
        return 2
    out = Path(args.out or tempfile.mkdtemp(prefix="seed_sweep-"))
    seeds = range(args.first_seed, args.first_seed + args.count)
    print(f"seed_sweep: {len(scenarios)} scenarios x seeds {seeds.start}..{seeds.stop - 1}, {args.minutes:g} min each, "
          f"car and camera {steer}; drives under {out}", flush=True)
    rows, t0 = [], time.monotonic()
    for sc in scenarios:
        for seed in seeds:
            r, err = drive_one(out, sc, seed, args.minutes, steer)
            print(line(sc, seed, r, err), flush=True)
            rows.append((sc, seed, r, err))
    print(f"summary ({time.monotonic() - t0:.0f} s):")
    for sc in scenarios:
        mine = [(r, e) for s, _, r, e in rows if s == sc]
        ran = [r for r, _ in mine if r is not None]
        drift = sum(takeovers(r)[1] for r in ran)
        print(f"  {sc:12s} {sum(not r.verdict() for r in ran)}/{len(mine)} meet the thresholds, "
              f"{sum(takeovers(r)[0] for r in ran)} takeovers ({drift} drifting), "
              f"{len(mine) - len(ran)} failed to run")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{"scenario": s, "seed": k, "error": e, "report": r.to_dict() if r else None}
                       for s, k, r, e in rows], f, indent=1, default=str)
    return 0 if all(r is not None and not r.verdict() for _, _, r, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
