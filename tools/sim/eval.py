"""roadpilot eval: many simulated drives of the whole stack, and one report of them all.

    roadpilot eval --scenarios highway,curvy --seeds 4 --minutes 2 --out ~/eval/today
    roadpilot eval --preset record --out ~/eval/record --markdown docs/driving_record.md
    roadpilot eval ... --ray local          # the same sweep as Ray tasks (--ray ADDRESS: a running cluster)
    roadpilot eval --scenarios highway --steer-gain 2 --minutes 3 --out ...   # a car unlike its parameters

A sweep is scenarios x seeds x simulated cars. Each drive is the whole stack in lockstep with the scripted driver
supervising (as the closed-loop tests drive), in a process of its own with its own data folder and prefix
(tools/sim/lib/eval_drive.py), so several run side by side. Local worker processes by default; with --ray each
drive is a Ray task whose result and route folder come back to OUT (on a cluster the drive ran on another node).

OUT/sweep.json holds the sweep's drives; OUT/drives/<scenario>-<seed>-<car>/ each drive's route, report, manager log
and result.json. Running the same command again resumes: drives already done are kept, failed ones are run again.
A drive that fails (the stack crashed, it hung, it could not start) is reported with its reason, never dropped.

The aggregate (OUT/aggregate.json, OUT/index.html with OUT/summary.png, and --markdown's table): kilometres and hours
driven, the share engaged, interventions per 100 km by cause (the supervising driver's takeovers by why, other
disengagements by their events), collisions and lane departures with links to their routes and clips
(`--clips`: rendered around each incident with tools.render), and a table per scenario.
"""

import argparse
import html
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from tools.sim.lib.eval_drive import DriveSpec, read_result, write_result

REPO = Path(__file__).resolve().parents[2]
PRESETS = {  # name: (scenarios, seeds, minutes)
    "record": ("highway,curvy,straight,suburban,stop_and_go,lead_brake,cut_in,stopped_car,mixed", 5, 2.5),
}
FIRST_SEED = 500_000        # nothing was tuned on these (closed-loop tests: 300000.., tuning: below)
CLIP_BEFORE_S, CLIP_S = 6.0, 10.0
RUNNING: set[subprocess.Popen] = set()  # drives' processes now running (their own sessions: Ctrl-C stops them here)


def drive_timeout_s(spec: DriveSpec) -> float:
    """Wall seconds a drive may take before it is stopped and reported as hung: the stack's start (up to 90 s on a
    loaded machine), then the drive at a tenth of real time at worst."""
    return 180.0 + 10.0 * spec.minutes * 60.0


# --- one drive, in a child process -------------------------------------------------------------------------
def run_drive(spec: DriveSpec, folder: Path) -> dict:
    """The drive in its own process (and process group); its result.json, or a failure saying why there is none."""
    shutil.rmtree(folder, ignore_errors=True)  # what an interrupted or failed run of it left
    folder.mkdir(parents=True)
    log = folder / "eval_drive.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tools.sim.lib.eval_drive", spec.to_json(), str(folder)],
                                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        RUNNING.add(proc)
        try:
            code = proc.wait(timeout=drive_timeout_s(spec))
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return {"status": "failed", "reason": f"hung: no result after {drive_timeout_s(spec):.0f} s of wall time"}
        finally:
            _kill_group(proc)  # a manager it left behind
            RUNNING.discard(proc)
    result = read_result(folder)
    if result is not None:
        return result
    how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
    tail = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()][-1:]
    return {"status": "failed", "reason": f"the drive's process ended without a result ({how})"
                                          + (f": {tail[0][:200]}" if tail else "")}


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, 9)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def ray_drive(spec_json: str) -> tuple[dict, bytes]:
    """A Ray task: the drive in a temporary folder of the node it runs on; its result and the folder as a gzipped
    tar (the head unpacks it into OUT: on a cluster the node's disk is not the head's)."""
    spec = DriveSpec.from_json(spec_json)
    with tempfile.TemporaryDirectory(prefix="rp-eval-") as tmp:
        folder = Path(tmp) / spec.name
        result = run_drive(spec, folder)
        write_result(folder, result)
        packed = Path(tmp) / "drive.tar.gz"
        with tarfile.open(packed, "w:gz") as tar:
            tar.add(folder, arcname=".")
        return result, packed.read_bytes()


# --- running a sweep ---------------------------------------------------------------------------------------
def local_runner(specs: list[DriveSpec], drives_dir: Path, workers: int) -> Iterator[tuple[DriveSpec, dict]]:
    """Yields (spec, result) as drives end, `workers` at a time, each in a process of its own."""
    pool = ThreadPoolExecutor(workers, thread_name_prefix="drive")
    try:
        futures: dict[Future, DriveSpec] = {pool.submit(run_drive, s, drives_dir / s.name): s for s in specs}
        pending = set(futures)
        while pending:
            # in slices: a main thread blocked in a lock without a timeout would not see Ctrl-C
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for f in done:
                yield futures[f], f.result()
    finally:  # also on Ctrl-C: the drives under way stop now (a resumed sweep runs them again)
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in list(RUNNING):
            _kill_group(proc)


def ray_runner(address: str, workers: int) -> Callable[[list[DriveSpec], Path], Iterator[tuple[DriveSpec, dict]]]:
    """A runner that makes each drive a Ray task (one CPU each, at most `workers` at once on a local instance).
    `address` "local" starts a Ray instance on this machine for the sweep; anything else is ray.init's address."""
    def run(specs: list[DriveSpec], drives_dir: Path) -> Iterator[tuple[DriveSpec, dict]]:
        import ray
        local = address == "local"
        ray.init(address=None if local else address, num_cpus=workers if local else None, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
        try:
            task = ray.remote(num_cpus=1, max_retries=0)(ray_drive)
            refs = {task.remote(s.to_json()): s for s in specs}
            pending = list(refs)
            while pending:
                done, pending = ray.wait(pending, num_returns=1, timeout=0.5)  # in slices: Ctrl-C gets through
                if not done:
                    continue
                spec = refs[done[0]]
                try:
                    result, packed = ray.get(done[0])
                    folder = drives_dir / spec.name
                    shutil.rmtree(folder, ignore_errors=True)
                    folder.mkdir(parents=True)
                    with tempfile.NamedTemporaryFile(suffix=".tar.gz") as f:
                        f.write(packed)
                        f.flush()
                        with tarfile.open(f.name) as tar:
                            tar.extractall(folder, filter="data")
                except Exception as e:  # noqa: BLE001 - a task Ray lost (a node died) is a failed drive
                    result = {"status": "failed", "reason": f"Ray task lost: {type(e).__name__}: {str(e)[:200]}"}
                yield spec, result
        finally:
            ray.shutdown()
    return run


def sweep(specs: list[DriveSpec], out: Path, runner, progress: bool = True) -> list[tuple[DriveSpec, dict]]:
    """Runs the drives of `specs` that OUT has no good result for yet; returns every drive's (spec, result), in
    the order of `specs`. Each result is stored in its folder as it comes."""
    from tqdm import tqdm
    drives_dir = out / "drives"
    results = {s.name: read_result(drives_dir / s.name) for s in specs}
    todo = [s for s in specs if (results[s.name] or {}).get("status") != "ok"]
    if len(todo) < len(specs):
        print(f"eval: resuming: {len(specs) - len(todo)} of {len(specs)} drives already done", flush=True)
    bar = tqdm(total=len(todo), unit="drive", disable=not progress, file=sys.stdout, dynamic_ncols=True,
               bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} drives [{elapsed}<{remaining}]")
    for spec, result in runner(todo, drives_dir):
        (drives_dir / spec.name).mkdir(parents=True, exist_ok=True)
        write_result(drives_dir / spec.name, result)
        results[spec.name] = result
        bar.write(drive_line(spec, result))
        bar.update(1)
    bar.close()
    return [(s, results[s.name]) for s in specs]


def drive_line(spec: DriveSpec, result: dict) -> str:
    """A drive in a line: distance, engagement, interventions by cause, incidents, the steering's figures (lateral
    error, oscillation, lateral jerk, torqued's estimate) and what falls short of the thresholds."""
    if result["status"] != "ok":
        return f"{spec.name:34s} FAILED: {result['reason']}"
    r = result["report"]
    causes = Counter(cause(d) for d in r["disengagements"])
    st = r.get("steering")
    learnt = "n/a" if st is None else f"{st['lat_accel_factor']:.2f} ({st['source']}, {st['confidence']:.0%})"
    why = "; ".join(result["verdict"])
    return (f"{spec.name:34s} {'ok' if not why else 'SHORT':5s} {r['distance_m'] / 1000:5.2f} km  engaged "
            f"{r['engaged_fraction_of_drive']:4.0%}  interventions {sum(causes.values())}"
            f"{' (' + ', '.join(f'{c} {k}' for c, k in causes.items()) + ')' if causes else ''}  lat err "
            f"{fmt(r['lat_err_mean_m'], '.2f')} m  osc {fmt(r['steer_osc_rms'], '.3f')}  lat jerk "
            f"{fmt(r['max_lat_jerk'], '.1f')}  torqued {learnt}  ({result['wall_s']:.0f} s wall)"
            + (f"  [{why}]" if why else ""))


# --- the aggregate -----------------------------------------------------------------------------------------
def cause(d: dict) -> str:
    """An intervention's cause: the supervising driver's why ("takeover: drifting"), else the events that ended
    the engagement."""
    return f"takeover: {d['driver'].split(':')[0]}" if d.get("driver") else d["reason"]


def per_100km(n: int, km: float) -> float | None:
    return None if km <= 0 else round(100.0 * n / km, 1)


def summarise(rows: list[tuple[DriveSpec, dict]]) -> dict:
    """Totals of a group of drives (failed ones counted, not scored)."""
    ok = [r["report"] for _, r in rows if r["status"] == "ok"]
    km = sum(r["distance_m"] for r in ok) / 1000.0
    minutes = sum(r["minutes"] for r in ok)
    causes = Counter(cause(d) for r in ok for d in r["disengagements"])
    n = sum(causes.values())
    return {"drives": len(rows), "failed": len(rows) - len(ok), "km": round(km, 3), "hours": round(minutes / 60, 4),
            "engaged_share": None if not minutes else round(sum(r["engaged_minutes"] for r in ok) / minutes, 4),
            "interventions": n, "interventions_per_100km": per_100km(n, km),
            "by_cause": {c: {"count": k, "per_100km": per_100km(k, km)} for c, k in sorted(causes.items())},
            "collisions": sum(r["collisions"] for r in ok), "lane_departures": sum(r["lane_departures"] for r in ok),
            "meet_thresholds": sum(not r["verdict"] for _, r in rows if r["status"] == "ok")}


def incidents(rows: list[tuple[DriveSpec, dict]]) -> list[dict]:
    """Every collision and lane departure: which drive, when, and where its route is (relative to OUT)."""
    out = []
    for spec, r in rows:
        if r["status"] != "ok":
            continue
        route = f"drives/{spec.name}/{r['route']}"
        for kind, key in (("collision", "collision_times"), ("lane departure", "lane_departure_times")):
            for t in r["report"][key]:
                out.append({"drive": spec.name, "kind": kind, "t": round(t, 2), "route": route,
                            "clip": f"drives/{spec.name}/clip-{kind.replace(' ', '_')}-{t:.0f}s.mp4"})
    return out


def aggregate(rows: list[tuple[DriveSpec, dict]]) -> dict:
    scenarios = list(dict.fromkeys(s.scenario for s, _ in rows))
    return {"total": summarise(rows),
            "scenarios": {sc: summarise([(s, r) for s, r in rows if s.scenario == sc]) for sc in scenarios},
            "failed": [{"drive": s.name, "reason": r["reason"]} for s, r in rows if r["status"] != "ok"],
            "incidents": incidents(rows),
            "drives": [{"drive": s.name, **({"route": f"drives/{s.name}/{r['route']}", "km":
                        round(r["report"]["distance_m"] / 1000, 3), "engaged": r["report"]["engaged_fraction_of_drive"],
                        "interventions": len(r["report"]["disengagements"]), "lat_err_mean_m":
                        r["report"]["lat_err_mean_m"]} if r["status"] == "ok" else {"failed": r["reason"]})}
                       for s, r in rows]}


def render_clips(out: Path, agg: dict) -> None:
    """A clip around each incident (tools.render: the camera video where the drive recorded one, else overlays on
    a dark background)."""
    from tools.render import render
    for inc in agg["incidents"]:
        clip = out / inc["clip"]
        if clip.exists():
            continue
        start = max(0.0, inc["t"] - CLIP_BEFORE_S)
        code = render.main([str(out / inc["route"]), "-o", str(clip), "--start", f"{start:g}",
                            "--seconds", f"{CLIP_S:g}", "--scale", "0.5"])
        if code != 0:
            inc["clip"] = None


# --- what a person reads -----------------------------------------------------------------------------------
def fmt(v, spec: str = ".1f") -> str:
    return "n/a" if v is None else format(v, spec)


def table_rows(agg: dict) -> list[list[str]]:
    head = ["scenario", "drives", "failed", "km", "hours", "engaged", "interventions", "per 100 km", "collisions",
            "lane departures", "meet thresholds"]
    rows = [head]
    for name, s in [*agg["scenarios"].items(), ("all", agg["total"])]:
        rows.append([name, str(s["drives"]), str(s["failed"]), f"{s['km']:.1f}", f"{s['hours']:.2f}",
                     fmt(s["engaged_share"] and 100 * s["engaged_share"], ".0f") + "%", str(s["interventions"]),
                     fmt(s["interventions_per_100km"]), str(s["collisions"]), str(s["lane_departures"]),
                     f"{s['meet_thresholds']}/{s['drives'] - s['failed']}"])
    return rows


def causes_rows(agg: dict) -> list[list[str]]:
    rows = [["cause", "count", "per 100 km"]]
    rows += [[c, str(v["count"]), fmt(v["per_100km"])] for c, v in agg["total"]["by_cause"].items()]
    return rows


def text_report(agg: dict) -> str:
    def table(rows):
        w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(c.ljust(w[i]) for i, c in enumerate(r)) for r in rows)
    t = agg["total"]
    lines = [f"{t['drives']} drives, {t['km']:.1f} km, {t['hours']:.2f} h simulated, engaged "
             f"{fmt(t['engaged_share'] and 100 * t['engaged_share'], '.0f')}%, "
             f"{t['interventions']} interventions ({fmt(t['interventions_per_100km'])} per 100 km)", "",
             table(table_rows(agg))]
    if t["by_cause"]:
        lines += ["", table(causes_rows(agg))]
    for inc in agg["incidents"]:
        lines.append(f"{inc['kind']} in {inc['drive']} at {inc['t']:.1f} s: {inc['route']}")
    for f in agg["failed"]:
        lines.append(f"FAILED {f['drive']}: {f['reason']}")
    return "\n".join(lines)


def git_commit() -> str:
    """The checkout's commit (with "+changes" when the tree differs from it), for a record to say what drove."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
        return sha + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def markdown(agg: dict, command: str) -> str:
    def table(rows):
        return "\n".join(["| " + " | ".join(rows[0]) + " |", "|" + " --- |" * len(rows[0]),
                          *("| " + " | ".join(r) + " |" for r in rows[1:])])
    t = agg["total"]
    out = ["# Driving record (simulator)", "",
           f"Regenerated by `{command}` (this one: commit {git_commit()}). Every scenario, seeds nothing was "
           "tuned on, the whole stack in lockstep with the scripted driver supervising (it takes over when the car "
           "drifts or closes in too fast).", "",
           f"**{t['km']:.1f} km** and {t['hours']:.2f} h driven in {t['drives']} drives ({t['failed']} failed to run), "
           f"engaged {fmt(t['engaged_share'] and 100 * t['engaged_share'], '.0f')}% of the time, "
           f"**{fmt(t['interventions_per_100km'])} interventions per 100 km**.", "", table(table_rows(agg)), ""]
    if t["by_cause"]:
        out += ["Interventions by cause:", "", table(causes_rows(agg)), ""]
    if agg["incidents"]:
        out += ["Incidents: " + "; ".join(f"{i['kind']} in {i['drive']} at {i['t']:.1f} s" for i in agg["incidents"]),
                ""]
    return "\n".join(out)


def plot(agg: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    names = list(agg["scenarios"])
    a.bar(names, [agg["scenarios"][n]["interventions_per_100km"] or 0 for n in names], color="#c0504d")
    a.set_ylabel("interventions per 100 km")
    a.tick_params(axis="x", rotation=40)
    errs = [d["lat_err_mean_m"] for d in agg["drives"] if d.get("lat_err_mean_m") is not None]
    b.hist(errs, bins=20, color="#4f81bd")
    b.set_xlabel("mean |lateral error| while engaged, per drive (m)")
    b.set_ylabel("drives")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def html_page(agg: dict) -> str:
    def table(rows):
        head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
        body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows[1:])
        return f"<table><tr>{head}</tr>{body}</table>"
    esc = html.escape
    link = lambda href, text: f'<a href="{esc(href)}">{esc(text)}</a>' if href else esc(text)  # noqa: E731
    inc = [["drive", "what", "t (s)", "route", "clip"]] + [
        [esc(i["drive"]), esc(i["kind"]), f"{i['t']:.1f}", link(i["route"], "route"),
         link(i["clip"], "clip") if i["clip"] and i.get("rendered") else "-"] for i in agg["incidents"]]
    drives = [["drive", "km", "engaged", "interventions", "lat err (m)", "route / why it failed"]] + [
        [esc(d["drive"]), fmt(d.get("km"), ".2f"), fmt(d.get("engaged") and 100 * d["engaged"], ".0f") + "%",
         str(d.get("interventions", "-")), fmt(d.get("lat_err_mean_m"), ".3f"),
         link(d["route"], "route") if "route" in d else "FAILED: " + esc(d["failed"])] for d in agg["drives"]]
    return (f"<!doctype html><meta charset=utf-8><title>roadpilot eval</title><style>body{{font-family:sans-serif}}"
            f"td,th{{padding:2px 8px;text-align:left}}</style><h1>roadpilot eval</h1>"
            f"<pre>{esc(text_report(agg).split(chr(10))[0])}</pre>"
            f"<h2>Per scenario</h2>{table([[esc(c) for c in r] for r in table_rows(agg)])}"
            f"<h2>Interventions by cause</h2>{table([[esc(c) for c in r] for r in causes_rows(agg)])}"
            f'<p><img src="summary.png" alt="interventions per scenario and lateral error per drive"></p>'
            f"<h2>Collisions and lane departures</h2>{table(inc)}<h2>Drives</h2>{table(drives)}")


def write_outputs(out: Path, agg: dict, clips: bool) -> None:
    if clips:
        render_clips(out, agg)
    for i in agg["incidents"]:
        i["rendered"] = bool(i["clip"]) and (out / i["clip"]).exists()
    (out / "aggregate.json").write_text(json.dumps(agg, indent=1, allow_nan=False) + "\n")
    plot(agg, out / "summary.png")
    (out / "index.html").write_text(html_page(agg))


# --- the command -------------------------------------------------------------------------------------------
def build_specs(args) -> list[DriveSpec]:
    from tools.sim.lib.simulation import variant
    scenarios, seeds, minutes = args.scenarios, args.seeds, args.minutes
    return [DriveSpec(sc, args.first_seed + k, car, minutes, variant(args))
            for sc in scenarios for car in args.cars for k in range(seeds)]


def parse(argv: list[str] | None):
    from tools.sim.lib.scenarios import SCENARIOS
    from tools.sim.lib.sim_car import DEFAULT_PLATFORM, SIM_PLATFORMS
    from tools.sim.lib.simulation import SimConfig, add_camera_args, add_steer_args, variant
    ap = argparse.ArgumentParser(prog="roadpilot eval", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), help="a named sweep: record = every scenario, 5 seeds, "
                    "2.5 min each, ~100 km (its scenarios, seeds and minutes; the options below override them)")
    ap.add_argument("--scenarios", help=f"comma-separated, or 'all' (default: all: {', '.join(SCENARIOS)})")
    ap.add_argument("--seeds", type=int, help="seeds per scenario and car (default 2)")
    ap.add_argument("--first-seed", type=int, default=FIRST_SEED, help="default: %(default)s (nothing tuned on these)")
    ap.add_argument("--cars", default=DEFAULT_PLATFORM,
                    help=f"comma-separated simulated cars (default: %(default)s; known: {', '.join(SIM_PLATFORMS)})")
    ap.add_argument("--minutes", type=float, help="simulated minutes per drive (default 2)")
    ap.add_argument("--out", required=True, help="the sweep's folder; the same folder again resumes the sweep")
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                    help="drives at once (default: one per two cores, %(default)s here: a stack takes ~1 core)")
    ap.add_argument("--ray", metavar="ADDRESS", help="run each drive as a Ray task: 'local' starts a Ray instance on "
                    "this machine, else a cluster's address (e.g. auto, or ray://head:10001)")
    ap.add_argument("--clips", action="store_true", help="render a clip around every collision and lane departure")
    ap.add_argument("--markdown", metavar="FILE", help="also write the record's table as markdown to FILE")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar (a line per drive still)")
    add_steer_args(ap)
    add_camera_args(ap)
    args = ap.parse_args(argv)
    preset = PRESETS.get(args.preset, (None, None, None))
    sc_text = args.scenarios or preset[0] or "all"
    args.scenarios = list(SCENARIOS) if sc_text == "all" else [s for s in sc_text.split(",") if s]
    args.seeds = args.seeds if args.seeds is not None else (preset[1] or 2)
    args.minutes = args.minutes if args.minutes is not None else (preset[2] or 2.0)
    args.cars = [c for c in args.cars.split(",") if c]
    bad = ([f"unknown scenario {s!r} (known: {', '.join(SCENARIOS)})" for s in args.scenarios if s not in SCENARIOS]
           + [f"unknown simulated car {c!r} (known: {', '.join(SIM_PLATFORMS)})" for c in args.cars
              if c not in SIM_PLATFORMS])
    if not args.scenarios or not args.cars:
        bad.append("no scenario or no car to drive")
    if args.seeds < 1 or not 0 < args.minutes <= 60 or args.workers < 1:
        bad.append("--seeds and --workers must be >= 1 and --minutes in (0, 60]")
    try:
        SimConfig(**variant(args))  # the checks each drive makes, before the first starts
    except ValueError as e:
        bad.append(str(e))
    return args, bad


def main(argv: list[str] | None = None) -> int:
    args, bad = parse(argv)
    if bad:
        print(f"roadpilot eval: {bad[0]}", file=sys.stderr)
        return 2
    out = Path(args.out).expanduser()
    specs = build_specs(args)
    commit = git_commit()
    plan = {"drives": [json.loads(s.to_json()) for s in specs]}
    try:
        out.mkdir(parents=True, exist_ok=True)
        known = out / "sweep.json"
        if known.exists() and json.loads(known.read_text()) != plan:
            print(f"roadpilot eval: {out} holds another sweep (its sweep.json lists other drives): give a new --out",
                  file=sys.stderr)
            return 2
        known.write_text(json.dumps(plan, indent=1) + "\n")
    except (OSError, ValueError) as e:
        print(f"roadpilot eval: cannot use {out}: {e}", file=sys.stderr)
        return 2
    how = f"Ray ({args.ray})" if args.ray else f"{args.workers} local worker{'s' * (args.workers > 1)}"
    print(f"roadpilot eval: {len(specs)} drives ({len(args.scenarios)} scenarios x {args.seeds} seeds from "
          f"{args.first_seed} x {len(args.cars)} cars, {args.minutes:g} min each) on {how}; results in {out}",
          flush=True)
    t0 = time.monotonic()
    runner = ray_runner(args.ray, args.workers) if args.ray else \
        (lambda todo, d: local_runner(todo, d, args.workers))
    try:
        rows = sweep(specs, out, runner, progress=not args.no_progress)
    except KeyboardInterrupt:
        done = sum((read_result(out / "drives" / s.name) or {}).get("status") == "ok" for s in specs)
        print(f"\nroadpilot eval: interrupted with {done} of {len(specs)} drives done; the same command resumes",
              file=sys.stderr)
        return 130
    agg = aggregate(rows)
    write_outputs(out, agg, args.clips)
    if args.markdown:
        Path(args.markdown).write_text(markdown(agg, "roadpilot eval " + " ".join(argv if argv is not None
                                                                                  else sys.argv[1:])) + "\n")
        if git_commit() != commit:
            print(f"roadpilot eval: the checkout changed during the sweep (from {commit})", file=sys.stderr)
    print(text_report(agg))
    print(f"roadpilot eval: done in {time.monotonic() - t0:.0f} s; open {out / 'index.html'}")
    return 1 if agg["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
