"""Faults injected into a closed-loop drive of the whole stack (the manager in sim mode, lockstep; see
tools/sim/lib/stack_drive.py): the driving model killed while engaged, the camera stopped, garbage on the CAN bus.

The scripted driver supervises as in the closed-loop tests. When the stack disengages, controlsd cancels the
car's cruise, and the driver engages it again with the stalk once it is settled (tools/sim/lib/driver.py):
that is how a re-engagement happens here, as it would in a car.
"""

import os
import signal

from cereal import messaging
from tools.sim.lib.sent_frames import sent_frame_violations
from tools.sim.lib.stack_drive import Drive, Transition, describe

HIGHWAY_SEED = 300_100      # not a training (0..15), validation (100000..) or test (200000..) seed
STEADY_S = 3.0              # engaged this long (simulated) before a fault is injected


def engaged_for(d: Drive) -> float:
    """Simulated seconds the stack has been in the plain enabled state without a break (0 when it is not): soft
    disabling and overriding count as breaks."""
    if not d.transitions or d.transitions[-1].state != "enabled":
        return 0.0
    i = len(d.transitions) - 1
    while i > 0 and d.transitions[i - 1].state == "enabled":  # alert changes are transitions too
        i -= 1
    return d.t - d.transitions[i].t


def engage_steadily(d: Drive, by_t: float) -> float:
    d.run_until(by_t, until=lambda d: engaged_for(d) >= STEADY_S)
    assert engaged_for(d) >= STEADY_S, f"never engaged for {STEADY_S} s by t={d.t}: {d.transitions[-8:]}"
    return d.t


def after(d: Drive, t: float) -> list[Transition]:
    return [tr for tr in d.transitions if tr.t >= t]


def first_disengagement(trs: list[Transition]) -> tuple[Transition, list[Transition]]:
    """The first transition out of the enabled state, and the transitions up to it."""
    for i, tr in enumerate(trs):
        if tr.state != "enabled":
            return tr, trs[:i + 1]
    raise AssertionError(f"never left the enabled state: {trs}")


def test_modeld_killed_while_engaged_soft_disables_restarts_and_reengages(tmp_path):
    d = Drive(tmp_path, "highway", HIGHWAY_SEED, 70.0)
    with d:
        t_kill = engage_steadily(d, 30.0)
        old = d.process("modeld")
        assert old.running
        os.kill(old.pid, signal.SIGKILL)

        def modeld_back(d: Drive) -> bool:
            p = d.process("modeld")
            return p.restarts > old.restarts and p.running and p.pid != old.pid
        d.run_until(t_kill + 20.0, until=modeld_back)
        assert modeld_back(d), f"the manager did not restart modeld: {d.process('modeld')}"
        t_back = d.t
        d.run_until(t_back + 30.0, until=lambda d: d.t > t_back and engaged_for(d) >= STEADY_S)
        recovered = engaged_for(d) >= STEADY_S
    r = d.report()
    print(describe(r, d.wall_s))
    print("after the kill at", t_kill, after(d, t_kill)[:16])
    first, _ = first_disengagement(after(d, t_kill))
    # a soft disable: the driver gets a take-over alert and SOFT_DISABLE_TIME to take over, not a sudden drop.
    # It ends disengaged, or back in enabled when modeld returns within that time (how long a restart takes
    # depends on the machine): either way the stack is engaged again, steadily, with the new modeld
    assert first.state == "softDisabling" and first.enabled, first
    assert first.alert.startswith("TAKE CONTROL IMMEDIATELY"), first
    assert recovered, f"not engaged again after modeld came back at t={t_back}: {after(d, t_back)[:12]}"
    assert r.collisions == 0 and r.lane_departures == 0


def test_stopped_camera_raises_an_alert_and_disengages(tmp_path):
    d = Drive(tmp_path, "highway", HIGHWAY_SEED + 1, 45.0)
    with d:
        t_stop = engage_steadily(d, 30.0)
        cam = d.process("camerad")
        os.kill(cam.pid, signal.SIGSTOP)  # a camera that hangs: alive to the manager, no frames
        try:
            d.run_until(t_stop + 10.0)
        finally:
            os.kill(cam.pid, signal.SIGCONT)
        d.run_until(t_stop + 11.0)
    r = d.report()
    print(describe(r, d.wall_s))
    first, _ = first_disengagement(after(d, t_stop))
    assert first.state == "softDisabling" and first.alert.startswith("TAKE CONTROL IMMEDIATELY"), first
    blind = [tr for tr in after(d, first.t) if tr.t < t_stop + 10.0]
    assert any(not tr.enabled for tr in blind), f"still engaged without a camera: {blind}"
    # without frames it never engages again: the driver's attempts are refused with a reason
    assert not blind[-1].enabled, blind[-6:]
    assert any(tr.alert.startswith("roadpilot Unavailable") or tr.alert.startswith("TAKE CONTROL")
               for tr in blind if not tr.enabled), blind
    assert r.collisions == 0 and r.lane_departures == 0


def test_garbage_on_the_bus_lets_no_unsafe_frame_out_and_crashes_nothing(tmp_path):
    d = Drive(tmp_path, "highway", HIGHWAY_SEED + 2, 35.0, watch=("can", "carState", "adapterState"), can_garbage=3.0)
    with d:
        r = d.drive()
    print(describe(r, d.wall_s))
    summary, adapter = d.bridge_summary(), d.adapter_status()
    print({k: adapter[k] for k in ("rx", "tx", "tx_sent", "rx_garbage", "rx_safety_refused", "tx_blocked")},
          "car refused", summary["car_refused"])
    # the garbage was there: the adapter dropped what CAN cannot carry, the safety layer ignored bad tracked
    # frames, card dropped known messages that cannot be what their address says
    assert adapter["rx_garbage"].get("bad_length", 0) > 1000
    assert sum(adapter["rx_safety_refused"].values()) > 100
    assert messaging.log_from_bytes(d.raw["carState"][-1]).carState.canErrorCounter > 1000
    # nothing crashed
    assert all(p.running and p.restarts == 0 for p in d.manager_state.processes if p.shouldBeRunning), \
        [(p.name, p.running, p.restarts) for p in d.manager_state.processes]
    # the stack drove through it
    assert r.first_engaged_t is not None and r.engaged_fraction >= 0.95, r.disengagements
    assert r.collisions == 0 and r.lane_departures == 0
    # no unsafe frame: the stack never asked the safety layer for one (but in the gate's silent start, where the
    # mode refuses everything: MODE), and what left passes the rules again
    assert {k: n for k, n in adapter["tx_blocked"].items() if not k.startswith("MODE:")} == {}
    assert summary["car_refused"] == {}
    # and the stack was told so twice a second: the car's mode, no relay malfunction
    states = [messaging.log_from_bytes(m).adapterState for m in d.raw["adapterState"]]
    assert len(states) > 50 and states[-1].car == "enabled" and states[-1].safetyMode == adapter["mode"]
    assert not any(s.relayMalfunction for s in states)
    mode, param = adapter["mode"].split(":")
    assert mode == "toyota"
    bad, sent = sent_frame_violations(d.raw["can"], int(param))
    # every frame sent was echoed, but those of the last step (no `can` came after them)
    assert sent > 5000 and 0 <= adapter["tx_sent"] - sent < 20, (sent, adapter["tx_sent"])
    assert bad == [], bad[:20]

