"""Lockstep replay speed: each non-model daemon as a real process over a 60 s route, as a ratio of real time.

    python -m tools.bench.replay [--seconds 60]

card replays the real RAV4 minute when ../shared/data is there (else the synthetic RAV4 route); plannerd,
controlsd and selfdrived replay the synthetic stack route (tests/process_replay/inputs.py). Each line
gives the wall time of the replay itself (process start-up is shown apart) and wall / route length;
the design's budget is <= 0.2 (5x faster than real time) for the daemons together, run one after another.
"""

import argparse
import os
import sys
import tempfile
import time

from tests.process_replay.inputs import car_route, stack_route
from tests.process_replay.process_replay import available, set_params_from
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


def bench(cfg, inputs: list[bytes]) -> tuple[float, float, int]:
    """(start-up s, replay s, outputs) of one daemon over `inputs`."""
    from cereal import messaging
    set_params_from(inputs)
    evs = [(e.which(), e.logMonoTime, d) for d in inputs for e in (messaging.log_from_bytes(d),)]
    d = LockstepDaemon(cfg.module, cfg.args, t_start_ns=evs[0][1] - 1_000_000)
    try:
        t0 = time.monotonic()
        n = len(d.start())
        t1 = time.monotonic()
        for service, t, dat in evs:
            n += len(d.feed(service, dat, t))
        return t1 - t0, time.monotonic() - t1, n
    finally:
        d.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.bench.replay", description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("ROADPILOT_PREFIX", f"bench-replay-{os.getpid()}")
    os.environ["ROADPILOT_DATA"] = tempfile.mkdtemp(prefix="rp-bench-")
    stack = [m.to_bytes() for m in stack_route(args.seconds)]
    total = 0.0
    print(f"lockstep replay of a {args.seconds:g} s route, one daemon at a time (real processes)")
    for cfg in available():
        inputs, what = card_inputs(args.seconds) if cfg.route == "car" else (stack, "synthetic stack")
        startup, wall, n = bench(cfg, inputs)
        total += wall
        print(f"  {cfg.name:<11} {what:<17} {len(inputs):>6} in {n:>6} out  start-up {startup:4.1f} s  "
              f"replay {wall:5.2f} s  ratio {wall / args.seconds:.3f}")
    ratio = total / args.seconds
    print(f"  all together (sequential): {total:.2f} s for {args.seconds:g} s  ratio {ratio:.3f} "
          f"(budget {BUDGET}: {'OK' if ratio <= BUDGET else 'OVER'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
