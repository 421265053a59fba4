#!/usr/bin/env python3
"""The whole stack in real time: CPU cores used and missed model frames, against the design's budget.

    python -m tools.bench.stack [--seconds 60] [--warmup 30] [--scenario mixed] [--seed 0] [--json out.json]

Runs the manager in sim mode exactly as `roadpilot sim` does (the simulator's bridge and every onboard process
the manager starts: camerad, modeld, calibrationd, canbridged, card, plannerd, controlsd, selfdrived, loggerd,
encoderd, uid, ...), with the scripted driver supervising, in its own IPC prefix and a temporary data folder.
After the warm-up (processes start, calibration, engagement), CPU time (user + system, psutil) of the manager
and every process under it is read at the start and the end of the window and once a second in between (so a
process that ends inside the window keeps what it used): cores = CPU seconds / wall seconds. Model frames:
every roadCameraState frameId of the window without a modelV2 of the same frameId (frames still in flight at
the end are not counted), read live by this process, whose own CPU is not counted.

Design budget: the whole stack in sim real time uses <= 1.3 CPU cores, the simulator included, with zero missed
model frames. The machine's other load (a training job, say) is measured and printed beside it: on a
machine short of cores it slows the stack down and can cost frames that an idle one would not lose.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import psutil

BUDGET_CORES = 1.3


@dataclass
class Tree:
    """CPU seconds per process of the manager's tree, by process title ("roadpilot:<name>")."""
    root: psutil.Process
    cpu: dict[int, tuple[str, float]] = field(default_factory=dict)   # pid -> (name, user + system s)

    def sample(self) -> None:
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        for p in procs:
            try:
                with p.oneshot():
                    t = p.cpu_times()
                    title = (p.cmdline() or [p.name()])[0]
            except psutil.Error:
                continue  # gone between the listing and the read: its last sample stays
            name = title.split(":", 1)[1] if title.startswith("roadpilot:") else os.path.basename(title)
            self.cpu[p.pid] = (name, t.user + t.system)


def cores_by_name(start: dict[int, tuple[str, float]], end: dict[int, tuple[str, float]], wall: float) -> dict:
    """Cores per process name over the window; a pid first seen inside it counts from 0 (it started then)."""
    out: dict[str, float] = {}
    for pid, (name, s1) in end.items():
        s0 = start.get(pid, (name, 0.0))[1]
        out[name] = out.get(name, 0.0) + (s1 - s0) / wall
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


class FrameWatch:
    """Camera frames and model frames seen live, by frameId."""

    def __init__(self):
        from cereal import messaging
        self.messaging = messaging
        self.socks = {s: messaging.sub_sock(s) for s in ("roadCameraState", "modelV2")}
        self.sd = messaging.sub_sock("selfdriveState", conflate=True)
        self.sim = messaging.sub_sock("simState", conflate=True)
        self.sim_t: list[float] = []   # the simulator's time at each look in the window
        self.cam: set[int] = set()
        self.model: set[int] = set()
        self.model_dropped: list[int] = []
        self.enabled: list[bool] = []

    def drain(self, record: bool) -> None:
        for s, sock in self.socks.items():
            while (dat := sock.receive(0)) is not None:
                if not record:
                    continue
                ev = self.messaging.log_from_bytes(dat)
                if s == "roadCameraState":
                    self.cam.add(ev.roadCameraState.frameId)
                else:
                    self.model.add(ev.modelV2.frameId)
                    self.model_dropped.append(ev.modelV2.framesDropped)
        if record and (dat := self.sd.receive(0)) is not None:
            self.enabled.append(self.messaging.log_from_bytes(dat).selfdriveState.enabled)
        if (dat := self.sim.receive(0)) is not None:
            t = self.messaging.log_from_bytes(dat).simState.t
            self.sim_t = [*self.sim_t, t] if record else [t]  # the last one before the window is its start

    def missed(self) -> tuple[int, int]:
        """(camera frames of the window up to the last model frame, those without a modelV2)."""
        if not self.model:
            return len(self.cam), len(self.cam)
        counted = [f for f in self.cam if f <= max(self.model)]
        return len(counted), sum(1 for f in counted if f not in self.model)

    def close(self) -> None:
        for sock in (*self.socks.values(), self.sd, self.sim):
            sock.close()


def run(args: argparse.Namespace) -> dict:
    from tools.cli import stop_manager
    from tools.sim.bridge import manager_env
    from tools.sim.lib.simulation import SimConfig
    cfg = SimConfig(scenario=args.scenario, seed=args.seed, driver="supervise", minutes=0.0)  # drives until stopped
    env = {**os.environ, **manager_env(cfg)}
    watch = FrameWatch()
    log = open(args.log, "w")  # noqa: SIM115 - the manager's whole life
    mgr = subprocess.Popen([sys.executable, "-m", "selfdrive.manager.manager", "sim"], env=env, stdout=log,
                           stderr=subprocess.STDOUT)
    tree = Tree(psutil.Process(mgr.pid))
    try:
        end_warmup = time.monotonic() + args.warmup
        while time.monotonic() < end_warmup and mgr.poll() is None:
            watch.drain(record=False)
            time.sleep(0.05)
        tree.sample()
        start = dict(tree.cpu)
        psutil.cpu_percent(None)  # the machine's reference point
        me = psutil.Process()
        me0 = sum(me.cpu_times()[:2])
        t0 = time.monotonic()
        next_sample = t0 + 1.0
        while (now := time.monotonic()) < t0 + args.seconds and mgr.poll() is None:
            watch.drain(record=True)
            if now >= next_sample:
                tree.sample()
                next_sample += 1.0
            time.sleep(0.02)
        tree.sample()
        wall = time.monotonic() - t0
        machine = psutil.cpu_percent(None) / 100.0 * psutil.cpu_count()
        bench = (sum(me.cpu_times()[:2]) - me0) / wall
        ended_early = mgr.poll()
        watch.drain(record=True)
    finally:
        stop_manager(mgr)
        log.close()
        watch.close()
    per = cores_by_name(start, tree.cpu, wall)
    frames, missed = watch.missed()
    dropped, sim_t = watch.model_dropped, watch.sim_t
    return {"seconds": round(wall, 1), "warmup_s": args.warmup, "scenario": args.scenario, "seed": args.seed,
            "total_cores": round(sum(per.values()), 3), "cores": {k: round(v, 3) for k, v in per.items()},
            "camera_frames": frames, "missed_model_frames": missed, "camera_fps": round(len(watch.cam) / wall, 1),
            "sim_realtime_factor": round((sim_t[-1] - sim_t[0]) / wall, 2) if len(sim_t) > 1 else None,
            "modeld_frames_dropped": (max(dropped) - min(dropped)) if dropped else None,
            "engaged_fraction": (sum(watch.enabled) / len(watch.enabled)) if watch.enabled else None,
            "manager_exit": ended_early, "machine_cpus": psutil.cpu_count(), "machine_busy_cores": round(machine, 2),
            "bench_cores": round(bench, 3),
            "other_processes_cores": round(max(0.0, machine - sum(per.values()) - bench), 2),
            "load_avg_1m": round(os.getloadavg()[0], 2)}


def report(r: dict) -> str:
    ok_cpu, ok_frames = r["total_cores"] <= BUDGET_CORES, r["missed_model_frames"] == 0
    lines = [f"whole stack in sim real time ({r['scenario']}, seed {r['seed']}, scripted driver supervising): "
             f"{r['seconds']:g} s measured after {r['warmup_s']:g} s of warm-up",
             f"  total CPU: {r['total_cores']:.2f} cores (budget <= {BUDGET_CORES} incl. the simulator): "
             f"{'within' if ok_cpu else 'OVER'} budget",
             "  per process: " + ", ".join(f"{n} {c:.2f}" for n, c in r["cores"].items()),
             f"  missed model frames: {r['missed_model_frames']} of {r['camera_frames']} camera frames (budget 0): "
             f"{'within' if ok_frames else 'OVER'} budget; modeld's own count of dropped frames in the window: "
             f"{r['modeld_frames_dropped'] if r['modeld_frames_dropped'] is not None else 'no modelV2 seen'}",
             f"  the simulator ran at {r['sim_realtime_factor']}x real time; camera frames came at "
             f"{r['camera_fps']} fps (20 expected)",
             "  engaged: " + ("no selfdriveState seen" if r["engaged_fraction"] is None
                              else f"{r['engaged_fraction']:.0%} of the window"),
             f"  the machine: {r['machine_cpus']} CPUs, {r['machine_busy_cores']:.2f} cores busy in all, of which "
             f"{r['other_processes_cores']:.2f} by processes outside the stack and this bench "
             f"({r['bench_cores']:.2f}), load average {r['load_avg_1m']}"]
    if r["other_processes_cores"] > 0.2:
        lines.append("  note: other work shared the CPUs: the stack was measured under that load")
    if r["manager_exit"] is not None:
        lines.append(f"  the manager ended early with status {r['manager_exit']}: the window is short")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="measured window (default 60)")
    ap.add_argument("--warmup", type=float, default=30.0, help="seconds before the window (default 30)")
    ap.add_argument("--scenario", default="mixed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args(argv)
    data = tempfile.mkdtemp(prefix="rp-bench-")
    os.environ["ROADPILOT_PREFIX"] = f"bench{os.getpid()}"   # its own sockets: a stack running beside it is untouched
    os.environ["ROADPILOT_DATA"] = data                      # params and the route, removed afterwards
    args.log = os.path.join(tempfile.gettempdir(), f"rp-bench-stack-{os.getpid()}.log")
    try:
        r = run(args)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    print(report(r))
    print(f"  the stack's log: {args.log}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
