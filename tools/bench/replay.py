"""Lockstep replay speed: each non-model daemon as a real process over a 60 s route, as a ratio of real time.

    python -m tools.bench.replay [--seconds 60] [--jobs N]

card replays the real RAV4 minute when ../shared/data is there (else the synthetic RAV4 route); plannerd,
controlsd and selfdrived replay the synthetic stack route (tests/process_replay/inputs.py). Each line
gives the wall time of the replay itself (process start-up is shown apart) and wall / route length;
the design's budget is <= 0.2 (5x faster than real time) for the daemons together.

Two runs, both printed: one daemon after another, and all of them at once, N at a time (each with its own
sockets and data directory; every daemon's replay is independent of the others', and one lockstep pair keeps
at most one core busy, since the driver and the daemon take turns). In the second, the daemons are started
first and all begin replaying together; the figure is from that common start to the last one's end.
"""

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time

from tests.process_replay.inputs import car_route, stack_route
from tests.process_replay.process_replay import apart, available, config, set_params_from
from tools.replay.lockstep_driver import LockstepDaemon

BUDGET = 0.2


def card_inputs(seconds: float) -> tuple[list[bytes], str]:
    data = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "comma2k19-rav4")
    if os.path.isdir(data):
        from tools.importers import comma2k19
        t, frames, _ = comma2k19.load_frames(data)
        msgs = [m.to_bytes() for m in comma2k19.can_messages(t, frames)]
        return msgs[:int(seconds * 100)], "real RAV4 minute"
    return [m.to_bytes() for m in car_route(seconds)], "synthetic RAV4"


def bench(cfg, inputs: list[bytes], ready=None) -> tuple[float, float, int]:
    """(start-up s, replay s, outputs) of one daemon over `inputs`; `ready` (a barrier) is waited on between
    the daemon's start and its replay."""
    from cereal import messaging
    set_params_from(inputs)
    evs = [(e.which(), e.logMonoTime, d) for d in inputs for e in (messaging.log_from_bytes(d),)]
    d = LockstepDaemon(cfg.module, cfg.args, t_start_ns=evs[0][1] - 1_000_000)
    try:
        t0 = time.monotonic()
        n = len(d.start())
        t1 = time.monotonic()
        if ready is not None:
            ready.wait()
            t1 = time.monotonic()
        for service, t, dat in evs:
            n += len(d.feed(service, dat, t))
        return t1 - t0, time.monotonic() - t1, n
    finally:
        d.stop()


def _worker(name: str, inputs: list[bytes], ready, results) -> None:
    """One daemon's replay in a process of its own: its own socket prefix and data directory."""
    try:
        with apart(f"bench-replay-{name}"):
            startup, wall, n = bench(config(name), inputs, ready)
            end = time.monotonic()  # before the data directory is removed
        results.put((name, startup, wall, n, end, ""))
    except Exception as e:  # the parent reports it; a worker must not leave the others at the barrier
        ready.abort()
        results.put((name, 0.0, 0.0, 0, time.monotonic(), f"{type(e).__name__}: {e}"))


def parallel(jobs: list[tuple[str, list[bytes]]]) -> tuple[float, dict[str, tuple[float, float, int]]]:
    """All daemons replayed at once: (s from the common start to the last end, per daemon results)."""
    ctx = mp.get_context("fork")
    ready, results = ctx.Barrier(len(jobs) + 1), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(name, inputs, ready, results)) for name, inputs in jobs]
    for p in procs:
        p.start()
    ready.wait(timeout=120)
    start = time.monotonic()
    got = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    errors = [f"{name}: {err}" for name, *_, err in got if err]
    if errors:
        raise RuntimeError("; ".join(errors))
    return max(end for *_, end, _ in got) - start, {name: (su, w, n) for name, su, w, n, _, _ in got}


def _verdict(ratio: float) -> str:
    return f"ratio {ratio:.3f} (budget {BUDGET}: {'OK' if ratio <= BUDGET else 'OVER'})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.bench.replay", description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--jobs", type=int, default=0, help="daemons replayed at once (default: all of them)")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("ROADPILOT_PREFIX", f"bench-replay-{os.getpid()}")
    os.environ["ROADPILOT_DATA"] = tempfile.mkdtemp(prefix="rp-bench-")
    stack = [m.to_bytes() for m in stack_route(args.seconds)]
    jobs = []
    total = 0.0
    print(f"lockstep replay of a {args.seconds:g} s route, one daemon at a time (real processes)")
    for cfg in available():
        inputs, what = card_inputs(args.seconds) if cfg.route == "car" else (stack, "synthetic stack")
        jobs.append((cfg.name, inputs))
        startup, wall, n = bench(cfg, inputs)
        total += wall
        print(f"  {cfg.name:<11} {what:<17} {len(inputs):>6} in {n:>6} out  start-up {startup:4.1f} s  "
              f"replay {wall:5.2f} s  ratio {wall / args.seconds:.3f}")
    print(f"  all together, sequential: {total:.2f} s for {args.seconds:g} s  {_verdict(total / args.seconds)}")

    n_at_once = args.jobs or len(jobs)
    print(f"the same replays {n_at_once} at a time on {os.cpu_count()} cores")
    span = 0.0
    for k in range(0, len(jobs), n_at_once):
        wall, each = parallel(jobs[k:k + n_at_once])
        span += wall
        for name, (_, w, _n) in each.items():
            print(f"  {name:<11} replay {w:5.2f} s  ratio {w / args.seconds:.3f}")
    ratio = span / args.seconds
    print(f"  all together, {n_at_once} at a time: {span:.2f} s for {args.seconds:g} s  {_verdict(ratio)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
