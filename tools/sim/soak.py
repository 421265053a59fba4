"""The soak: the whole stack drives the simulator in lockstep for a long time while faults are injected on a
schedule; then it is judged from what it recorded and from what left for the car.

    python -m tools.sim.soak --minutes 60     # the hour (a little over an hour of wall time)
    python -m tools.sim.soak --short          # the short variant the tests run: every fault once, ~2.6 minutes

Faults (FAULTS): a daemon killed with SIGKILL (every daemon the drive runs, in turn), the disk full (the data
folder is a tmpfs of --disk-mb, filled to ENOSPC and freed again), persisted params damaged while selfdrived reads
them in its loop (a 200 MB file, garbage bytes), a publisher sending carState on another service's socket, and
garbage on the CAN bus for the whole drive. The drive also starts with a corrupt CalibrationParams, so the stack
must calibrate from nothing and say so (paramsReset). The tool re-executes itself under `unshare --mount` so the
tmpfs is its own and vanishes with it, whatever happens.

Judged (each a line of the verdict, all must pass):
- crashes: no process restarted more often than it was killed, and the drive ran to its end;
- unsafe frames: the adapter's safety layer never refused a frame the stack sent (but in its silent start), the
  simulated car refused nothing, and every sent frame the route recorded passes the rules again (sent_frames.py);
- routes: every segment reads whole (a segment whose loggerd was killed may end in one cut frame);
- nothing lost: the recording has no gap but while the disk was full or loggerd was down;
- driving: no collision or lane departure; every disengagement and soft disable follows a kill; after each kill
  the stack is engaged again; a full disk shows storageFault and costs no engagement.

The verdict is printed and written as JSON (--out); exit 0 when it passes, 1 when it does not, 2 on bad input.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cereal import messaging
from common.params import Params
from common.params_keys import KEYS
from common.paths import routes_dir
from selfdrive.loggerd.logreader import LogError, LogReader, ToolArgumentParser, finite_float
from selfdrive.loggerd.route import Route
from selfdrive.loggerd.route_writer import FLUSH_PERIOD
from tools.sim.lib.drive_report import DriveReport
from tools.sim.lib.sent_frames import SentFrameCheck
from tools.sim.lib.stack_drive import NOT_NEEDED, Drive, describe

NAMESPACE_ENV = "ROADPILOT_SOAK_NAMESPACE"   # set once re-executed in a private mount namespace
SCENARIO = "highway"
SEED = 300_500            # not a training (0..15), validation (100000..), test (200000..) or fault-test (300100..) seed
CAN_GARBAGE = 1.0         # garbage frames per 10 ms step, the whole drive
# every daemon the drive runs, in the order they are killed; the bridge is the simulator (the world), not a daemon
KILLED = ("loggerd", "hardwared", "calibrationd", "logmessaged", "camerad", "modeld", "card", "plannerd",
          "controlsd", "selfdrived", "torqued")
BIG_PARAM = ("LongitudinalPersonality", 200 * 1024 * 1024)   # read by selfdrived in its 100 Hz loop
GARBAGE_PARAM = ("ExperimentalMode", b"\xff\xfe garbage \x00")
CORRUPT_CALIBRATION = b'{"rpy": [0, 0, 0], "blocks": [], "valid_blocks": 1e999}'
WRONG_SERVICE = "roadEncodeIdx"   # its producer (encoderd) is not run in the drive; loggerd records the service
FILLER = "soak-disk-filler"

EXPLAIN_S = 20.0          # a disengagement this long after a kill is the kill's doing
REENGAGE_S = 40.0         # after a kill the stack is engaged again within this (restart, calibrate, driver's stalk)
RACE_BLOCKS_PER_KILL = 10  # commands in flight when a kill drops the car's cruise or the heartbeat (see judge)
GAP_S = 0.5               # a recording gap longer than this (simulated s) is lost data unless a fault explains it
LOGGER_BACK_S = 12.0      # loggerd writes again this long after the disk frees (RETRY_PERIOD 5 s) or it restarts


@dataclass(frozen=True)
class Injection:
    t: float                  # simulated s
    fault: str                # a FAULTS key
    hold_s: float = 0.0       # how long it lasts (0: an instant, as a kill)
    targets: tuple[str, ...] = ()

    @property
    def end(self) -> float:
        return self.t + self.hold_s


# --- the schedules ----------------------------------------------------------------------------------------------
def short_schedule() -> tuple[list[Injection], float]:
    """Every fault once: the params and the disk while engaged, then every daemon killed, in two groups."""
    return [Injection(35.0, "bad_params", 10.0), Injection(50.0, "disk_full", 15.0),
            Injection(70.0, "wrong_service", 5.0), Injection(80.0, "kill", targets=KILLED[:5]),
            Injection(115.0, "kill", targets=KILLED[5:])], 155.0


def hour_schedule(seconds: float) -> tuple[list[Injection], float]:
    """Cycles of 300 s: six kills (every daemon in turn), the disk full for 20 s, damaged params for 15 s, a
    wrong-service publisher for 10 s; the first cycle starts once the stack has calibrated and engaged."""
    out: list[Injection] = []
    k = 0
    for start in range(40, int(seconds) - 60, 300):
        for dt in (0, 60, 90, 150, 210, 240):
            if start + dt < seconds - REENGAGE_S:
                out.append(Injection(start + dt, "kill", targets=(KILLED[k % len(KILLED)],)))
                k += 1
        out += [Injection(start + 30, "disk_full", 20.0), Injection(start + 120, "bad_params", 15.0),
                Injection(start + 180, "wrong_service", 10.0)]
    return sorted((i for i in out if i.end < seconds - 5.0), key=lambda i: i.t), seconds


# --- the faults ----------------------------------------------------------------------------------------------------
class Faults:
    """What each fault does to the running stack, and undoes."""

    def __init__(self, drive: Drive, data: Path):
        self.d = drive
        self.data = data
        self.params = Params()
        self.killed: Counter = Counter()
        self.kill_log: list[tuple[float, str]] = []
        self.wrong_sock = None
        self.wrong_sent = 0

    def kill(self, inj: Injection) -> None:
        for name in inj.targets:
            p = self.d.process(name)
            if p is None or not p.running or not p.pid:
                print(f"soak: t={self.d.t:.1f} {name} not running, not killed", flush=True)
                continue
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            self.killed[name] += 1
            self.kill_log.append((self.d.t, name))

    def disk_full(self, inj: Injection) -> None:
        chunk = b"\0" * (1 << 20)
        with open(self.data / FILLER, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(chunk)
            except OSError:
                pass   # ENOSPC: full (a partial last chunk is written as far as it fits)

    def disk_free(self, inj: Injection) -> None:
        os.unlink(self.data / FILLER)

    def bad_params(self, inj: Injection) -> None:
        key, size = BIG_PARAM
        with open(os.path.join(self.params.root, key), "wb") as f:
            f.truncate(size)   # sparse: 200 MB to fstat and to a reader, no space taken
        key, raw = GARBAGE_PARAM
        with open(os.path.join(self.params.root, key), "wb") as f:
            f.write(raw)

    def params_back(self, inj: Injection) -> None:
        for key in (BIG_PARAM[0], GARBAGE_PARAM[0]):
            self.params.put(key, KEYS[key].default)

    def wrong_service_on(self, inj: Injection) -> None:
        self.wrong_sock = messaging.pub_sock(WRONG_SERVICE)

    def wrong_service_off(self, inj: Injection) -> None:
        self.wrong_sock.close()
        self.wrong_sock = None

    def tick(self) -> None:
        """Between injections: the wrong-service publisher sends a plausible carState (standing still, unlike the
        car) on its socket."""
        if self.wrong_sock is not None:
            msg = messaging.new_message("carState")
            msg.carState.vEgo = 0.0
            self.wrong_sock.send(msg.to_bytes())
            self.wrong_sent += 1


# fault: (start, end); end None for an instant
FAULTS: dict[str, tuple[Callable[[Faults, Injection], None], Callable[[Faults, Injection], None] | None]] = {
    "kill": (Faults.kill, None),
    "disk_full": (Faults.disk_full, Faults.disk_free),
    "bad_params": (Faults.bad_params, Faults.params_back),
    "wrong_service": (Faults.wrong_service_on, Faults.wrong_service_off),
}


# --- the verdict -------------------------------------------------------------------------------------------------
@dataclass
class Verdict:
    seconds: float
    wall_s: float
    injections: list[dict]
    kills: dict[str, int]
    restarts: dict[str, int]
    segments: int
    route_bytes: int
    damaged_segments: dict[str, str]
    gaps: list[tuple[float, float]]
    unexplained_gaps: list[tuple[float, float]]
    sent_frames: int
    unjudged_frames: int
    unsafe: list[str]
    adapter_blocked: dict[str, int]
    counter_blocks: int
    race_blocks: int
    counter_breaks: int
    car_refused: dict
    disengagements: list[dict]
    unexplained_disengagements: list[dict]
    unexplained_soft_disables: list[tuple[float, str]]
    not_reengaged: list[float]
    storage_alerts: int
    params_reset_alert: bool
    collisions: int
    lane_departures: int
    engaged_fraction: float
    first_engaged_t: float | None
    wrong_service_sent: int
    report: str
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def route_check(route_path: str, check: SentFrameCheck) -> tuple[dict[str, str], list[float], int]:
    """Reads every segment alone, in order: what is damaged in which, the simState times recorded and the route's
    size; every recorded `can` goes to `check` (which starts over at each gap)."""
    damaged, times, size = {}, [], 0
    for seg in Route(route_path).segments:
        path = seg.log_path("rlog")
        size += os.path.getsize(path)
        try:
            lr = LogReader(path, sort_by_time=False, services=("simState", "can"))
            for ev in lr:
                if ev.which() == "simState":
                    times.append(ev.simState.t)
                else:
                    check.feed(ev.as_builder().to_bytes())
        except LogError as e:
            damaged[str(seg.number)] = f"unreadable: {e}"
        else:
            problems = [("corrupt", w) for _, w in lr.corrupt + lr.skipped] + [("cut", w) for _, w in lr.truncated]
            if problems:
                damaged[str(seg.number)] = "; ".join(f"{kind}: {what}" for kind, what in problems)
    return damaged, times, size


def windows(injections: list[Injection], kill_log: list[tuple[float, str]]) -> list[tuple[float, float]]:
    """Simulated time spans in which the recording may have a gap: the disk full (the write that fails holds what
    loggerd buffered since its last flush; then loggerd retries), loggerd dead (its buffer is lost with it; then it
    restarts)."""
    out = [(i.t - 2 * FLUSH_PERIOD, i.end + LOGGER_BACK_S) for i in injections if i.fault == "disk_full"]
    out += [(t - 2 * FLUSH_PERIOD, t + LOGGER_BACK_S) for t, name in kill_log if name == "loggerd"]
    return out


def judge(d: Drive, faults: Faults, injections: list[Injection], seconds: float) -> Verdict:
    r: DriveReport = d.report()
    summary = d.bridge_summary() or {}
    adapter = d.adapter_status() or {}
    check = SentFrameCheck(int(adapter.get("mode", "toyota:0").partition(":")[2] or 0))
    loggerd_kills = faults.killed["loggerd"]
    damaged, times, size = route_check(r.route, check)
    times.sort()
    gaps = [(a, b) for a, b in zip(times, times[1:], strict=False) if b - a > GAP_S]
    allowed = windows(injections, faults.kill_log)
    unexplained_gaps = [(a, b) for a, b in gaps if not any(lo <= a + 0.1 and b <= hi + GAP_S for lo, hi in allowed)]
    if times and times[-1] < seconds - 2.0:
        unexplained_gaps.append((times[-1], seconds))

    # What the adapter's layer refused of what the stack asked (nothing of it reached the car). MODE: the gate's silent
    # start, where the mode refuses everything. COUNTER: card restarted (killed) and its message counter with it; the
    # layer drops the one frame that breaks the sequence. NOT_ALLOWED / HEARTBEAT: a daemon killed, the car's cruise
    # or controlsd's heartbeat dropped a step before the stack's commands in flight stopped. Anything else (a limit,
    # an unlisted message, a checksum) is the stack asking for what it must not: never.
    asked = {k: n for k, n in adapter.get("tx_blocked", {}).items() if not k.startswith("MODE:")}
    counter_blocks = sum(n for k, n in asked.items() if k.startswith("COUNTER:"))
    race_blocks = sum(n for k, n in asked.items() if k.split(":")[0] in ("NOT_ALLOWED", "HEARTBEAT"))
    blocked = {k: n for k, n in asked.items() if k.split(":")[0] not in ("COUNTER", "NOT_ALLOWED", "HEARTBEAT")}
    kill_events = sum(1 for i in injections if i.fault == "kill")

    restarts = {p.name: p.restarts for p in d.manager_state.processes} if d.manager_state else {}
    kill_times = [t for t, _ in faults.kill_log]
    dis = [asdict(x) for x in r.disengagements]
    unexplained = [x for x in dis if not any(tk <= x["t"] <= tk + EXPLAIN_S for tk in kill_times)]
    # a soft disable is the stack asking the driver to take over: only a killed daemon may cause one
    soft = [(round(tr.t, 2), tr.alert) for tr, prev in zip(d.transitions[1:], d.transitions, strict=False)
            if tr.state == "softDisabling" and prev.state != "softDisabling"
            and not any(tk <= tr.t <= tk + EXPLAIN_S for tk in kill_times)]
    # engaged again after every kill: once the stack left the enabled state after it, it is back within REENGAGE_S
    not_back = []
    for tk in sorted(set(kill_times)):
        later = [tr for tr in d.transitions if tk < tr.t <= tk + REENGAGE_S]
        left = next((k for k, tr in enumerate(later) if tr.state != "enabled"), None)
        if left is not None and not any(tr.state == "enabled" for tr in later[left:]):
            not_back.append(tk)
    storage_alerts = sum(1 for tr, prev in zip(d.transitions[1:], d.transitions, strict=False)
                         if "Disk Full" in tr.alert and "Disk Full" not in prev.alert)

    v = Verdict(seconds=round(d.t, 1), wall_s=round(d.wall_s), injections=[asdict(i) for i in injections],
                kills=dict(faults.killed), restarts=restarts, segments=len(Route(r.route).segments), route_bytes=size,
                damaged_segments=damaged, gaps=gaps, unexplained_gaps=unexplained_gaps, sent_frames=check.sent,
                unjudged_frames=check.unjudged, unsafe=check.bad, adapter_blocked=blocked,
                counter_blocks=counter_blocks, counter_breaks=check.counter_breaks, race_blocks=race_blocks,
                car_refused=summary.get("car_refused", {"?": "no summary"}),
                disengagements=dis, unexplained_disengagements=unexplained, unexplained_soft_disables=soft,
                not_reengaged=not_back,
                storage_alerts=storage_alerts,
                params_reset_alert=any(a.startswith("paramsReset") for a in r.alerts),
                collisions=r.collisions, lane_departures=r.lane_departures, engaged_fraction=r.engaged_fraction,
                first_engaged_t=r.first_engaged_t, wrong_service_sent=faults.wrong_sent, report=describe(r, d.wall_s))
    rules = (
        (d.t >= seconds - 1.0, f"the drive ended at t={d.t:.1f} s of {seconds:.0f}"),
        (all(restarts.get(n, 0) <= faults.killed[n] for n in restarts),
         f"crashes: restarts {restarts} beyond the kills {dict(faults.killed)}"),
        (v.unsafe == [] and check.violations == 0, f"{check.violations} sent frames break the rules: {v.unsafe[:5]}"),
        # after a gap the judge waits for the car's cruise to be off (sent_frames.py): all up to the first gap at least
        (check.sent - check.unjudged > 100 * (gaps[0][0] if gaps else seconds),
         f"only {check.sent - check.unjudged} sent frames judged"),
        (blocked == {}, f"the adapter's safety layer refused frames the stack sent: {blocked}"),
        (race_blocks <= RACE_BLOCKS_PER_KILL * kill_events,
         f"{race_blocks} commands refused as not allowed, for {kill_events} kill events"),
        (counter_blocks <= faults.killed["card"],
         f"{counter_blocks} frames refused for their counter, card killed {faults.killed['card']}x"),
        # the layer on the bus counts every steering frame's counter, also of those it refused as not allowed; the
        # copy never sees those, so after two of them in a row it finds a jump the bus did not
        (check.counter_breaks <= counter_blocks + race_blocks, f"{check.counter_breaks} sent frames break the "
         f"counter sequence, {counter_blocks} refused for it by the adapter, {race_blocks} as not allowed"),
        (v.car_refused == {}, f"the car refused frames: {v.car_refused}"),
        (len([s for s, why in damaged.items() if "unreadable" in why or "corrupt" in why]) == 0
         and len(damaged) <= loggerd_kills, f"damaged segments {damaged} (loggerd killed {loggerd_kills}x)"),
        (unexplained_gaps == [], f"recording gaps no fault explains: {unexplained_gaps}"),
        (r.collisions == 0 and r.lane_departures == 0,
         f"{r.collisions} collisions, {r.lane_departures} lane departures"),
        (unexplained == [], f"disengagements no kill explains: {unexplained}"),
        (soft == [], f"soft disables no kill explains: {soft}"),
        (not_back == [], f"not engaged again within {REENGAGE_S:.0f} s of the kills at {not_back}"),
        (not any(i.fault == "disk_full" for i in injections) or storage_alerts >= 1,
         "the disk was full and no storageFault alert was shown"),
        (v.params_reset_alert, "the corrupt CalibrationParams was not reported (no paramsReset alert)"),
        (r.first_engaged_t is not None, "never engaged"),
    )
    v.failures = [why for ok, why in rules if not ok]
    return v


# --- the run -----------------------------------------------------------------------------------------------------
def run(seconds: float, injections: list[Injection], data: Path, scenario: str, seed: int,
        log_dir: Path) -> Verdict:
    os.environ["ROADPILOT_DATA"] = str(data)
    os.environ.setdefault("ROADPILOT_PREFIX", f"soak{os.getpid()}")
    # a calibration damaged on an earlier drive: the manager moves it aside (paramsReset), calibration starts over
    _write_raw(Params().root, "CalibrationParams", CORRUPT_CALIBRATION)
    d = Drive(log_dir, scenario, seed, seconds, watch=(), block=NOT_NEEDED, calibrated=False,
              can_garbage=CAN_GARBAGE)
    faults = Faults(d, data)
    # (t, order, action): ends sort before starts at the same t
    steps = sorted([(i.t, 1, i, FAULTS[i.fault][0]) for i in injections] +
                   [(i.end, 0, i, FAULTS[i.fault][1]) for i in injections if FAULTS[i.fault][1] is not None],
                   key=lambda s: (s[0], s[1]))
    with d:
        for t, _, inj, action in steps:
            while d.t < t - 1e-6:
                d.run_until(min(t, d.t + 0.2))
                faults.tick()
            print(f"soak: t={d.t:.1f} {action.__name__} {' '.join(inj.targets)}", flush=True)
            action(faults, inj)
        d.run_until(seconds)
        d.wall_s = time.monotonic() - d.started_at
    return judge(d, faults, injections, seconds)


def _write_raw(root: str, key: str, raw: bytes) -> None:
    with open(os.path.join(root, key), "wb") as f:
        f.write(raw)


def in_namespace(argv: list[str]) -> None:
    """Re-executes this tool in a private mount namespace (as root, or mapped to root in a user namespace)."""
    if os.environ.get(NAMESPACE_ENV):
        return
    unshare = shutil.which("unshare")
    if unshare is None:
        sys.exit("soak: needs `unshare` (util-linux) to give the drive a disk of its own")
    cmd = [unshare, "--mount", "--propagation", "private"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
    env = {**os.environ, NAMESPACE_ENV: "1"}
    os.execve(unshare, cmd + [sys.executable, "-m", "tools.sim.soak", *argv], env)


def mount_tmpfs(path: Path, mb: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mb}m", "soak", str(path)], capture_output=True,
                         text=True)
    if res.returncode != 0:
        raise SystemExit(f"soak: cannot mount a {mb} MB tmpfs on {path}: {res.stderr.strip()}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = ToolArgumentParser(prog="python -m tools.sim.soak", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Needs `unshare` and tmpfs mounts (root, or user namespaces).")
    length = ap.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=finite_float, default=60.0,
                        help="simulated minutes of the long soak (default 60)")
    length.add_argument("--short", action="store_true", help="the short variant: every fault once (~2.6 min)")
    ap.add_argument("--scenario", default=SCENARIO, help=f"sim scenario (default {SCENARIO})")
    ap.add_argument("--seed", type=int, default=SEED, help=f"sim seed (default {SEED})")
    ap.add_argument("--disk-mb", type=int, default=None,
                    help="size of the drive's disk (default: 8 MB per simulated minute, at least 256 MB)")
    ap.add_argument("--out", type=Path, default=Path("soak"),
                    help="folder for the verdict (verdict.json) and the manager's log (default ./soak)")
    ap.add_argument("--keep-route", action="store_true", help="copy the recorded route into --out (it lives on "
                    "the tmpfs, which goes with the tool)")
    args = ap.parse_args(argv)
    if not args.short and not 1.0 <= args.minutes <= 24 * 60:
        ap.error(f"--minutes must be 1..1440, got {args.minutes}")
    if args.disk_mb is not None and not 64 <= args.disk_mb <= 65536:
        ap.error(f"--disk-mb must be 64..65536, got {args.disk_mb}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"soak: cannot make --out {args.out}: {e.strerror}", file=sys.stderr)
        return 2
    in_namespace(argv)
    # stopped with SIGTERM: unwind like Ctrl-C, so the drive's manager (and its stack) is stopped too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    injections, seconds = short_schedule() if args.short else hour_schedule(args.minutes * 60.0)
    disk_mb = args.disk_mb or max(256, int(8 * seconds / 60))  # a route takes ~3 MB a minute here
    data = Path(tempfile.mkdtemp(prefix="roadpilot-soak-"))
    mount_tmpfs(data, disk_mb)
    print(f"soak: {seconds:.0f} s of {args.scenario} seed {args.seed} in lockstep, {len(injections)} injections, "
          f"data on a {disk_mb} MB tmpfs at {data}; the manager's log goes to {args.out}", flush=True)
    v = run(seconds, injections, data, args.scenario, args.seed, args.out)
    (args.out / "verdict.json").write_text(json.dumps(asdict(v) | {"ok": v.ok}, indent=1))
    if args.keep_route:
        shutil.copytree(routes_dir(), args.out / "routes", dirs_exist_ok=True)
    print(v.report)
    print(f"soak: {v.seconds:.0f} s simulated in {v.wall_s:.0f} s; kills {v.kills}; restarts {v.restarts}; "
          f"{v.segments} segments, {v.route_bytes / 1e6:.1f} MB; gaps {v.gaps}; {v.sent_frames} sent frames recorded, "
          f"{v.sent_frames - v.unjudged_frames} judged again, {len(v.unsafe)} refused; {v.counter_blocks} blocked "
          f"by the adapter for their counter after a card restart, {v.race_blocks} as not allowed (in flight as a "
          "kill dropped the cruise or the heartbeat); "
          f"disengagements {[(x['t'], x['reason']) for x in v.disengagements]}; storageFault shown "
          f"{v.storage_alerts}x; wrong-service messages {v.wrong_service_sent}")
    print("soak: PASS" if v.ok else "soak: FAIL\n  " + "\n  ".join(v.failures), flush=True)
    return 0 if v.ok else 1


if __name__ == "__main__":
    sys.exit(main())
