"""Lockstep is deterministic: the same drive of the whole stack (the manager in sim mode, every daemon a process of
its own, the model on every frame) twice, once with both cores kept busy by other processes, gives the same world and
the same carControl at every step, computed from the same inputs (controlsState names the carState, model frame,
plan, selfdriveState and steering estimate each cycle used).

The world's time is the stack's clock (common.clock), so how fast the machine is never enters what a daemon sees:
every step and every camera frame waits for all its answers (tools/sim/bridge.py; a step's answers name the carState
they answer), a message stamped at the present step is taken only once the world steps on, one of an earlier step
still on its way is waited for (cereal.messaging.SubMaster), and nothing the stack does before the world starts
depends on how long it took to start.
"""

import multiprocessing
import time

from cereal import messaging
from tools.sim.lib.stack_drive import Drive

SECONDS = 15.0
SEED = 300_200  # not a training (0..15), validation (100000..) or test (200000..) seed


def busy() -> None:
    while True:
        pass


def drive(tmp_path, name: str, load: bool) -> dict[str, dict[int, bytes]]:
    """The drive's simState (without the machine's clock) and carControl, by world step after the world started."""
    hogs = [multiprocessing.Process(target=busy, daemon=True) for _ in range(2 if load else 0)]
    for h in hogs:
        h.start()
    try:
        out = tmp_path / name
        out.mkdir()
        d = Drive(out, "highway", SEED, SECONDS, watch=("simState", "carControl", "controlsState"))
        with d:
            start = time.monotonic()
            d.run_until(SECONDS)
            wall = time.monotonic() - start
    finally:
        for h in hogs:
            h.terminate()
    summary = d.bridge_summary()
    assert not any(summary["lockstep_timeouts"].values()), summary["lockstep_timeouts"]
    states = [messaging.log_from_bytes(m) for m in d.raw["simState"]]
    first = next(ev for ev in states if ev.simState.t > 0)
    start_ns = first.logMonoTime - round(first.simState.t * 1e9)

    def by_step(events, strip=None) -> dict[int, bytes]:
        out = {}
        for ev in events:
            if ev.logMonoTime >= start_ns:
                body = getattr(ev, ev.which()).as_builder()
                if strip:
                    strip(body)
                out[(ev.logMonoTime - start_ns) // 10_000_000] = body.to_bytes()
        return out

    def no_wall_clock(ss) -> None:
        ss.wallMonoTime = 0

    def inputs_by_step(cs) -> None:
        # which carState, model frame, plan, selfdriveState and steering estimate controlsd used, as world steps:
        # the same inputs at every step, not only the same outputs (an input one step older often gives the same one)
        cs.cumLagMs = 0.0
        for f in ("carStateMonoTime", "modelV2MonoTime", "longitudinalPlanMonoTime", "selfdriveStateMonoTime",
                  "liveTorqueParametersMonoTime"):
            setattr(cs, f, max(0, getattr(cs, f) - start_ns) // 10_000_000)

    print(f"{name}: {SECONDS:g} s simulated in {wall:.1f} s of wall time, load={load}")
    return {"simState": by_step(states, no_wall_clock),
            "carControl": by_step(messaging.log_from_bytes(m) for m in d.raw["carControl"]),
            "controlsState": by_step((messaging.log_from_bytes(m) for m in d.raw["controlsState"]), inputs_by_step)}


def test_the_same_drive_gives_the_same_carcontrol_at_every_step_on_an_idle_and_a_loaded_machine(tmp_path):
    idle = drive(tmp_path, "idle", load=False)
    loaded = drive(tmp_path, "loaded", load=True)
    steps = int(SECONDS * 100)
    for service, n in (("simState", steps // 5), ("carControl", steps), ("controlsState", steps)):
        # every step but the last (the drive may stop before its answer is taken), in both drives
        a, b = ({k: v for k, v in run[service].items() if k < steps - 1} for run in (idle, loaded))
        assert len(a) >= n - 1 and set(a) == set(b), (service, len(a), len(b), sorted(set(a) ^ set(b))[:5])
        differ = sorted(k for k in a if a[k] != b[k])
        assert differ == [], f"{service} differs from step {differ[0]} on ({len(differ)} steps)"
