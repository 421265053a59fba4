"""Re-runs a daemon over a recorded route in lockstep and compares what it publishes with what the route recorded.

    python -m tools.replay.rerun ROUTE [--daemon controlsd] [--tolerance 0.01]

The daemon (a process replay config: card, plannerd, controlsd, selfdrived) runs as a real process on the
stepped clock (cereal/messaging/stepped.py) and is fed the route's messages of the services it declares it reads,
in their recorded order, at their recorded times. Each message it publishes is paired with the one the route recorded
for the same service just after the same input (the live daemon stamped it a fraction of a millisecond after
the input it answered; the replayed one carries the input's own time), and compared field by field. card runs as
the route's car (route.json's `car`, as the importers write it, else its carParams). A route that records none of
the daemon's outputs (an imported drive has only `can`) has nothing to compare: said so, exit status 1.

Paced as the live daemon was: on the route's own clock (the recorded stamps; a lockstep simulator's route is stamped
with the world's time, which its daemons ran on: common.clock). Fed what the live daemon had: where its outputs name
the inputs each cycle used (USED_INPUTS: controlsState names the carState it answered, the model frame, plan,
selfdriveState and steering estimate it had), each of those reaches the re-run daemon before the first cycle that
had it, even where the route's time order says otherwise (a plan that arrived a fraction of a millisecond after the
carState it was stamped before).

Figures (60 s highway drives recorded by the lockstep sim stack on the 2-core machine): controlsd's carControl
matches every paired cycle exactly (6298 of 6298 at a tolerance of 1e-9; the unpaired answers are from before
loggerd's first carControl). plannerd's plans match 81% within 0.01 and 95% within 0.05: the live plannerd ran
before the recording began, and its MPC's warm start carries that history, so the re-run one (which starts
with the route) solves to other answers within the solver's own tolerance (3e-4). selfdrived's selfdriveState:
99.4% (it names nothing it used yet).
"""

import sys
from dataclasses import dataclass, field

import numpy as np

from cereal import messaging
from selfdrive.car.fingerprinting import known_platform
from selfdrive.loggerd.logreader import LogError, LogReader, ToolArgumentParser, finite_float
from selfdrive.loggerd.route import route_of
from tests.process_replay.compare import field_diffs
from tests.process_replay.process_replay import config, declared, replay

PAIR_WINDOW_NS = 5_000_000   # a recorded output this soon after the replayed one's input time answered that input
IGNORE = ("logMonoTime", "controlsState.cumLagMs", "longitudinalPlan.solverExecutionTime")
# Daemons whose outputs say which inputs each cycle had: daemon -> (the input that paces a cycle, the output that
# says, its field naming the pacing message it answered, ((its field with the input's logMonoTime, that input's
# service), ...)). A message that is not the pacing one can arrive just before or just after the pacing one that
# follows it in the recording: the re-run delivers each one before the first cycle that had it, as the live daemon
# got it. The cycle is the pacing message the output names; by time (the last one logged before the output) only
# where it names none: a live daemon that answered late, after the next pacing message was logged, would be
# counted a cycle late (at start-up on a loaded machine it was, 9 cycles of a drive).
USED_INPUTS = {
    "controlsd": ("carState", "controlsState", "carStateMonoTime",
                  (("modelV2MonoTime", "modelV2"), ("longitudinalPlanMonoTime", "longitudinalPlan"),
                   ("selfdriveStateMonoTime", "selfdriveState"),
                   ("liveTorqueParametersMonoTime", "liveTorqueParameters"))),
    "plannerd": ("modelV2", "longitudinalPlan", "modelMonoTime",
                 (("carStateMonoTime", "carState"), ("selfdriveStateMonoTime", "selfdriveState"),
                  ("liveTracksMonoTime", "liveTracks"), ("liveTorqueParametersMonoTime", "liveTorqueParameters"))),
}


@dataclass
class Rerun:
    daemon: str
    inputs: int
    compared: dict[str, int] = field(default_factory=dict)    # service -> pairs compared
    matched: dict[str, int] = field(default_factory=dict)     # service -> pairs equal within the tolerance
    unpaired: dict[str, int] = field(default_factory=dict)    # service -> replayed outputs with no recorded twin
    worst: dict[str, tuple[str, float]] = field(default_factory=dict)  # service -> (field, largest |difference|)

    def share(self, service: str) -> float:
        n = self.compared.get(service, 0)
        return self.matched.get(service, 0) / n if n else 0.0

    def lines(self) -> list[str]:
        out = [f"{self.daemon}: {self.inputs} inputs replayed"]
        for s in sorted(self.compared):
            worst = self.worst.get(s)
            out.append(f"  {s}: {self.matched[s]} of {self.compared[s]} match ({self.share(s):.1%}), "
                       f"{self.unpaired.get(s, 0)} without a recorded twin" +
                       (f"; largest difference {worst[1]:.4g} in {worst[0]}" if worst else ""))
        return out


def rerun(route: str, daemon: str = "controlsd", tolerance: float = 0.01, log_path: str | None = None,
          env: dict[str, str] | None = None) -> Rerun:
    """Replays `daemon` over `route` (`env`: extra environment for the daemon); LogError when the route holds none
    of its inputs, RouteError when its route.json is there but unreadable."""
    cfg = config(daemon)
    reads, writes = declared(cfg.module)
    if not reads or not writes:
        raise ValueError(f"{cfg.module} does not declare the services it reads and publishes")
    # read before the logs: a route.json that cannot say which car is a refusal, not a guess
    r = route_of(route)
    meta = r.read_meta() if r is not None else {}
    inputs, recorded = [], {}  # inputs: (service, logMonoTime, Event bytes)
    for ev in LogReader(route):  # logMonoTime order: the daemons' own clock (a lockstep simState is not fed)
        s = ev.which()
        if s in reads or s == "carParams":
            inputs.append((s, ev.logMonoTime, ev.as_builder().to_bytes()))
        elif s in writes:
            recorded.setdefault(s, []).append(ev)
    if not any(s in reads for s, _, _ in inputs):
        raise LogError(f"{route}: none of {daemon}'s inputs ({', '.join(sorted(reads))}) are in it")
    if daemon in USED_INPUTS:
        inputs = as_used(inputs, recorded, *USED_INPUTS[daemon])
    # the car it ran as: what the importer wrote in route.json, else the route's carParams (process_replay.car_of)
    car = meta.get("car") or None
    if car is not None and not known_platform(car):
        raise ValueError(f"{route}: route.json names an unknown platform {car!r}")
    result = replay(cfg, [d for _, _, d in inputs], env=env, log_path=log_path, car=car)
    out = Rerun(daemon, len(inputs))
    new: dict[str, list] = {}
    for dat in result.outputs:
        ev = messaging.log_from_bytes(dat)
        new.setdefault(ev.which(), []).append(ev)
    for s, evs in new.items():
        rec = recorded.get(s, [])
        rec_t = np.array([e.logMonoTime for e in rec], np.int64)
        used = np.zeros(len(rec), bool)
        for ev in evs:
            k = int(np.searchsorted(rec_t, ev.logMonoTime))
            while k < len(rec) and used[k]:
                k += 1
            if k >= len(rec) or rec_t[k] - ev.logMonoTime > PAIR_WINDOW_NS:
                out.unpaired[s] = out.unpaired.get(s, 0) + 1
                continue
            used[k] = True
            same, worst = _same(rec[k], ev, tolerance)
            out.compared[s] = out.compared.get(s, 0) + 1
            out.matched[s] = out.matched.get(s, 0) + same
            if worst is not None and worst[1] > out.worst.get(s, ("", -1.0))[1]:
                out.worst[s] = worst
    return out


def as_used(inputs: list[tuple[str, int, bytes]], recorded: dict[str, list], pacing: str, output: str,
            answered: str, used: tuple[tuple[str, str], ...]) -> list[tuple[str, int, bytes]]:
    """`inputs` ((service, logMonoTime, bytes) in recorded order) reordered so that each message of a `used` service
    comes just before the pacing message of the first recorded cycle whose `output` names it or a newer one (a
    cycle: the pacing message the output's `answered` field names, else the last one logged before the output).
    Messages no cycle had keep their place; so does everything when the recording names nothing (a route from
    before the fields existed)."""
    pace_at = [i for i, (s, _, _) in enumerate(inputs) if s == pacing]
    pace_t = np.array([inputs[i][1] for i in pace_at], np.int64)
    by_time = {t: i for i, (s, t, _) in enumerate(inputs) if s == pacing}
    key = [(float(i), i) for i in range(len(inputs))]

    def cycle_of(out) -> int | None:
        named = by_time.get(int(getattr(getattr(out, output), answered)))
        if named is not None:
            return named
        k = int(np.searchsorted(pace_t, out.logMonoTime, side="right")) - 1
        return pace_at[k] if k >= 0 else None

    outs = [(cycle_of(out), getattr(out, output)) for out in recorded.get(output, [])]  # each output's cycle, once
    for fld, service in used:
        cycles = []  # (index in `inputs` of the cycle's pacing message, logMonoTime of the `service` message it had)
        for at, msg in outs:
            had = int(getattr(msg, fld))
            if at is not None and had > 0:
                cycles.append((at, had))
        if not cycles:
            continue
        cycles.sort()
        j = 0
        for i, (s, t, _) in enumerate(inputs):
            if s != service:
                continue
            while j < len(cycles) and cycles[j][1] < t:
                j += 1
            if j < len(cycles):
                key[i] = (cycles[j][0] - 0.5, i)
    return [inputs[i] for _, i in sorted(key)]


def _same(a, b, tol: float) -> tuple[bool, tuple[str, float] | None]:
    """Whether two Events agree within `tol` (compare.equal: absolute below 1, else relative), and the numeric
    field that differs most."""
    same, worst = True, None
    for path, va, vb in field_diffs(a, b, tol, IGNORE):
        same = False
        if isinstance(va, int | float) and isinstance(vb, int | float) and not isinstance(va, bool):
            d = abs(float(va) - float(vb))
            worst = (path, d) if worst is None or d > worst[1] else worst
    return same, worst


def main(argv: list[str] | None = None) -> int:
    ap = ToolArgumentParser(prog="python -m tools.replay.rerun", description=__doc__.splitlines()[0])
    ap.add_argument("route", help="route folder, segment or log file")
    ap.add_argument("--daemon", default="controlsd", help="card, plannerd, controlsd or selfdrived")
    ap.add_argument("--tolerance", type=finite_float, default=0.01,
                    help="float tolerance (absolute below 1, else relative)")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        r = rerun(args.route, args.daemon, args.tolerance)
    except (LogError, KeyError, ValueError) as e:
        print(f"rerun: {e}", file=sys.stderr)
        return 2
    print("\n".join(r.lines()))
    if not r.compared:  # a route without the daemon's outputs (an imported drive has only `can`): no verdict
        print(f"rerun: nothing to compare: the route records none of what {args.daemon} published that pairs with "
              f"the re-run's outputs ({', '.join(sorted(r.unpaired)) or 'none'})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
