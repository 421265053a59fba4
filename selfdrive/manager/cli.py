"""`roadpilot`: the command line. `roadpilot <command> --help` tells more about each command.

It says plainly what is not built yet: the simulator, replay and device support come in later
issues, and until then `roadpilot sim` runs only the processes that exist and reports what they
recorded. Nothing here pretends to drive.
"""

import argparse
import os
import sys
from collections import Counter

from common.paths import routes_dir
from selfdrive.manager import manager
from selfdrive.manager.process_config import MODES, PLANNED, PROCESSES
from tools.lib.logreader import LogError, LogReader

FUTURE_SIM_OPTIONS = ("--scenario", "--seed", "--minutes", "--lockstep", "--record")


def sim_stack_report() -> str:
    lines = ["Parts of the sim stack:"]
    width = max(len(p.name) for p in (*PROCESSES, *PLANNED))
    for p in PROCESSES:
        if p.runs_in("sim"):
            lines.append(f"  built          {p.name:<{width}}  {p.module}")
    for q in PLANNED:
        lines.append(f"  not built yet  {q.name:<{width}}  {q.module}: {q.role}")
    return "\n".join(lines)


def list_routes() -> set[str]:
    try:
        return {d for d in os.listdir(routes_dir()) if os.path.isdir(os.path.join(routes_dir(), d))}
    except FileNotFoundError:
        return set()


def route_summary(route_path: str) -> str:
    """Message counts per service, read back from the files (not taken from loggerd's own counters)."""
    lines = [f"Recorded route: {route_path}"]
    lr = LogReader(route_path, sort_by_time=False)
    try:
        counts = Counter(ev.which() for ev in lr)
    except LogError as e:
        return "\n".join([*lines, f"  unreadable: {e}"])
    lines.append(f"  {sum(counts.values())} messages read back (rlog)")
    lines += [f"  {service:<20} {n:>7}" for service, n in sorted(counts.items())]
    lines += [f"  problem: {path}: {what}" for path, what in lr.problems]
    return "\n".join(lines)


def cmd_sim(args: argparse.Namespace) -> int:
    print("roadpilot sim: the simulator is not built yet, so nothing drives and no driving output is shown.")
    print(sim_stack_report())
    print(f"Running the manager in sim mode for {args.seconds:g} s with what exists (Ctrl-C stops early).",
          flush=True)
    before = list_routes()
    rc = manager.main("sim", duration=args.seconds)
    if rc != 0:
        return rc
    new = sorted(list_routes() - before)
    if not new:
        print("No route was recorded (loggerd did not run or wrote nothing).")
    for name in new:
        print(route_summary(os.path.join(routes_dir(), name)))
    return 0


def cmd_manager(args: argparse.Namespace) -> int:
    return manager.main(args.mode)


def cmd_not_built(args: argparse.Namespace) -> int:
    print(f"roadpilot {args.command}: not built yet. {NOT_BUILT[args.command]}\n"
          f"What runs today: `roadpilot sim` and `roadpilot manager --mode {args.command}` "
          f"(only the processes that exist).", file=sys.stderr)
    return 1


NOT_BUILT = {
    "replay": "Replaying a recorded route needs tools/replay, camerad's video source and the onboard stack.",
    "device": "Driving a real car needs camerad (webcam), canbridged (CAN adapter), card and the control stack.",
}


DESCRIPTION = "roadpilot: an onboard driving assistant (adaptive cruise + lane centering) for Linux computers."
EPILOG = """environment:
  ROADPILOT_PREFIX  isolates one run's sockets (/tmp/rp-<prefix>/), so two stacks can run side by side
  ROADPILOT_DATA    where params and recorded routes live (default ~/.roadpilot)
  BLOCK=a,b         processes the manager never starts
  ONLY=a,b          the only processes the manager starts

`roadpilot <command> --help` tells more about each command."""


class _NotBuiltYet(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string} is not built yet: it needs the simulator (tools/sim), a later issue")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="roadpilot", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="<command>")

    sim = sub.add_parser("sim", help="run the sim stack for a bounded time and summarise the recorded route",
                         description="Runs the manager in sim mode with the processes that exist, for --seconds, "
                                     "then reads back the recorded route. The simulator itself is not built yet.")
    sim.add_argument("--seconds", type=float, default=10.0, help="how long to run (default: 10)")
    future = sim.add_argument_group("not built yet (they need the simulator)")
    for opt, metavar in zip(FUTURE_SIM_OPTIONS, ("NAME", "N", "MIN", None, None), strict=True):
        future.add_argument(opt, action=_NotBuiltYet, nargs=None if metavar else 0, metavar=metavar,
                            help="not built yet")
    sim.set_defaults(func=cmd_sim)

    mgr = sub.add_parser("manager", help="run the manager until Ctrl-C",
                         description="Runs every process of the mode that exists, restarting crashed ones, "
                                     "until SIGINT/SIGTERM. BLOCK=a,b and ONLY=a,b in the environment "
                                     "exclude or select processes.")
    mgr.add_argument("--mode", choices=MODES, default="sim", help="which process set to run (default: sim)")
    mgr.set_defaults(func=cmd_manager)

    for name in NOT_BUILT:
        nb = sub.add_parser(name, help="not built yet", description=f"not built yet. {NOT_BUILT[name]}")
        nb.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        nb.set_defaults(func=cmd_not_built)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command == "sim" and not args.seconds > 0:
        parser.error("--seconds must be positive")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
