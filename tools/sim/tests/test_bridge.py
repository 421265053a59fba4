"""The bridge as a real process: in lockstep its simState stream is a function of the scenario and of
what the stack answers (not of timing); in real time its car talks through canbridged's sim backend to
card, whose carState follows the simulation, and the stack's sendcan reaches the car."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from opendbc.can import CANPacker

from cereal import messaging
from common.clock import CLOCK_ENV, DRIVEN
from selfdrive.car.tests.helpers import wait_for_line
from tools.sim.lib.sim_car import PT_DBC

RAV4_SAFETY = "toyota:0x149"  # EPS scale 73, ALT_BRAKE, roadpilot longitudinal (what card's carParams says)


WORLD_CLOCK = {CLOCK_ENV: DRIVEN}  # the stack runs on the lockstep world's clock, as the manager starts it


def start(module: str, *args: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with open(log, "wb") as err:
        return subprocess.Popen([sys.executable, "-m", module, *args], stdout=subprocess.DEVNULL, stderr=err,
                                env={**os.environ, **(env or {})})


def stop(*procs: subprocess.Popen) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def summary(log: Path) -> dict:
    lines = [ln for ln in log.read_text().splitlines() if "bridge summary " in ln]
    assert lines, log.read_text()[-3000:]
    return json.loads(lines[-1].split("bridge summary ", 1)[1])["summary"]


def world_of(dat: bytes) -> bytes:
    """A simState's ground truth: everything but the machine's clock at that step."""
    ss = messaging.log_from_bytes(dat).simState.as_builder()
    ss.wallMonoTime = 0
    return ss.to_bytes()


def fields_apart(x: bytes, y: bytes) -> dict:
    """The simState fields where two differ: (one, the other)."""
    dx, dy = (messaging.log_from_bytes(d).simState.to_dict() for d in (x, y))
    return {k: (dx.get(k), dy.get(k)) for k in dx.keys() | dy.keys() if dx.get(k) != dy.get(k)}


def adapter(tmp_path: Path, name: str) -> subprocess.Popen:
    """canbridged as the manager starts it in lockstep: the sim backend on the world's clock (one `can` per step),
    with the car's safety mode forced (no card identifies the car here)."""
    return start("hardware.canbridged", "--backend", "sim", "--safety", RAV4_SAFETY, log=tmp_path / name,
                 env=WORLD_CLOCK)


def lockstep_run(tmp_path: Path, name: str, jitter_ms: float) -> tuple[list[bytes], dict]:
    sock = messaging.sub_sock("simState")
    stack = start("tools.sim.tests.fake_stack", "--jitter-ms", str(jitter_ms), log=tmp_path / f"{name}-stack",
                  env=WORLD_CLOCK)
    bridged = adapter(tmp_path, f"{name}-canbridged")
    bridge = start("tools.sim.bridge", "--scenario", "highway", "--seed", "1", "--driver", "supervise", "--lockstep",
                   "--minutes", "0.1", "--no-camera", log=tmp_path / f"{name}-bridge")
    stream = []
    try:
        deadline = time.monotonic() + 90
        while bridge.poll() is None and time.monotonic() < deadline:
            dat = sock.receive(100)
            if dat is not None:
                stream.append(world_of(dat))
        assert bridge.wait(5) == 0, (tmp_path / f"{name}-bridge").read_text()[-3000:]
        while (dat := sock.receive(200)) is not None:
            stream.append(world_of(dat))
    finally:
        stop(bridge, stack, bridged)
        sock.close()
    return stream, summary(tmp_path / f"{name}-bridge")


def test_lockstep_gives_the_same_simstate_stream_whatever_the_timing(tmp_path):
    # the same stack, answering at once in one run and after random 0-4 ms delays in the other
    a, sa = lockstep_run(tmp_path, "a", 0.0)
    b, sb = lockstep_run(tmp_path, "b", 4.0)
    # first what the bridge saw (a step the stack did not answer in time, a second answer): a stream that differs
    # then says why
    for s in (sa, sb):
        assert s["t"] == pytest.approx(6.0)
        assert not any(s["lockstep_timeouts"].values()), s["lockstep_timeouts"]
        assert s["lockstep_extra_answers"] == 0, s
    assert len(a) == len(b) == 120  # 6 simulated s at 20 Hz, none lost
    k = next((i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), None)
    assert k is None, (f"simState {k} differs", fields_apart(a[k], b[k]), sa["lockstep_late_answers"],
                       sb["lockstep_late_answers"])
    for s in (sa, sb):
        # the stack really drove: the cruise engaged and its commands passed the safety layer to the car
        assert s["engaged_s"] > 2.0
        assert s["frames_to_car"] > 500
    assert sa["engaged_s"] == sb["engaged_s"]


def test_realtime_car_reaches_card_through_canbridged_and_sendcan_reaches_the_car(tmp_path):
    sm = messaging.SubMaster(["carState", "simState"])
    # this test is the car port's sendcan; card publishes sendcan too (it binds the endpoint when it starts): ours
    # binds after card's, and canbridged connects after both, so it reads ours
    card = start("selfdrive.car.card", "--car", "TOYOTA_RAV4", log=tmp_path / "card")
    wait_for_line(tmp_path / "card", "identifying the car", 60)
    pm = messaging.PubMaster(["sendcan"])
    bridged = start("hardware.canbridged", "--backend", "sim", log=tmp_path / "canbridged")
    bridge = start("tools.sim.bridge", "--scenario", "straight", "--seed", "1", "--use-cruise", "--no-camera",
                   log=tmp_path / "bridge")
    packer = CANPacker(PT_DBC)

    def logs() -> str:
        return "\n".join(f"--- {n}\n{(tmp_path / n).read_text()[-1500:]}" for n in ("canbridged", "card", "bridge"))

    def wait_for(cond, what: str, timeout: float, acc: bool = False):
        deadline = time.monotonic() + timeout
        k = 0
        while time.monotonic() < deadline:
            sm.update(10)
            if acc and (k := k + 1) % 3 == 0:  # an ACC module on the bus: zero accel, as the car port sends it
                msg = messaging.new_message("sendcan", 1)
                msg.sendcan[0].address, msg.sendcan[0].dat, msg.sendcan[0].src = packer.make_can_msg(
                    "ACC_CONTROL", 0, {"ACCEL_CMD": 0.0, "PERMIT_BRAKING": 1, "RELEASE_STANDSTILL": 1})
                pm.send("sendcan", msg)
            if sm.seen["carState"] and sm.seen["simState"] and cond(sm["carState"], sm["simState"]):
                return
        pytest.fail(f"{what} within {timeout} s\n{logs()}")

    try:
        wait_for(lambda cs, ss: cs.canValid, "card's carState valid", 60)
        matches = 0
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # carState follows the sim, message after message
            sm.update(20)
            cs, ss = sm["carState"], sm["simState"]
            assert cs.canValid, logs()
            assert cs.vEgoRaw == pytest.approx(ss.vEgo, abs=0.3)
            assert cs.steeringAngleDeg == pytest.approx(ss.steeringAngleDeg, abs=1.5)
            assert cs.gasPressed  # the driver holds the speed on the gas pedal
            assert not cs.brakePressed
            matches += 1
        assert matches > 50
        wait_for(lambda cs, ss: cs.cruiseState.available, "the driver turns the cruise main switch on", 10)
        time.sleep(2.0)
        sm.update(10)
        assert not sm["carState"].cruiseState.enabled  # no ACC module on the bus: the car refuses to engage
        # now the "car port" sends ACC_CONTROL through canbridged's safety layer to the car: it engages
        wait_for(lambda cs, ss: cs.cruiseState.enabled and cs.cruiseState.speed > 20.0,
                 "the cruise engaged (at the current speed) once ACC_CONTROL arrived", 15, acc=True)
        # and the ACC module going silent ends it, as in the real car
        wait_for(lambda cs, ss: not cs.cruiseState.enabled, "the cruise ended when ACC_CONTROL stopped", 5)
    finally:
        stop(bridge, card, bridged)


@pytest.mark.parametrize("env, text", [("not json", "not JSON"), ('{"scenario": "moon"}', "unknown scenario"),
                                       ('{"seed": 1, "wheels": 3}', "unknown sim config keys")])
def test_bad_config_from_the_environment_exits_with_a_reason(tmp_path, env, text):
    p = start("tools.sim.bridge", log=tmp_path / "err", env={"ROADPILOT_SIM": env})
    assert p.wait(60) == 2
    assert text in (tmp_path / "err").read_text()


def test_lockstep_waits_for_a_stack_again_once_it_answers_after_a_stall(tmp_path):
    # the stack stops answering for longer than MAX_TIMEOUTS steps' waits: the world goes on at real time
    # without it, and once it answers again the bridge waits for it again (it did not before: it ran free for
    # the rest of the drive and never read the stack's commands again)
    stack = start("tools.sim.tests.fake_stack", "--stall-after", "200", "--stall-s", "14", log=tmp_path / "stack",
                  env=WORLD_CLOCK)
    bridged = adapter(tmp_path, "canbridged")
    bridge = start("tools.sim.bridge", "--scenario", "highway", "--seed", "1", "--driver", "supervise", "--lockstep",
                   "--minutes", "0.25", "--no-camera", log=tmp_path / "bridge")
    try:
        assert bridge.wait(150) == 0, (tmp_path / "bridge").read_text()[-3000:]
    finally:
        stop(bridge, stack, bridged)
    s = summary(tmp_path / "bridge")
    log = (tmp_path / "bridge").read_text()
    assert s["t"] == pytest.approx(15.0)
    # 3 in a row make the stack lost (a loaded machine may add one that a later answer ended, before the stall)
    assert s["lockstep_timeouts"]["sendcan"] >= 3 and "the stack stopped answering" in log
    assert s["lockstep_resyncs"] == 1 and "the stack answers again" in log
    # after the re-sync every step was answered again (no further timeouts) and its commands reached the car
    assert log.index("the stack answers again") > log.rindex("did not answer a step")
    assert s["frames_to_car"] > 1000


def test_a_sim_run_forgets_only_the_simulated_cars_learnt_steering():
    from common.params import Params
    from tools.sim.bridge import forget_learned_steering
    record = {"latAccelFactor": 2.0, "latAccelOffset": 0.0, "friction": 0.1, "confidence": 1.0, "points": 300}
    params = Params()
    params.put("LiveTorqueParameters", {"car": "TOYOTA_RAV4", **record})  # the real car this machine drives
    forget_learned_steering("LEXUS_CTH")
    assert params.get("LiveTorqueParameters")["car"] == "TOYOTA_RAV4"
    params.put("LiveTorqueParameters", {"car": "LEXUS_CTH", **record})    # an earlier sim run's
    forget_learned_steering("LEXUS_CTH")
    assert params.get("LiveTorqueParameters") is None
