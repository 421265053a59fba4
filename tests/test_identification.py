"""What reaches a car's bus, end to end: the manager with its real processes (the simulator's bridge or a CAN
log as the adapter, canbridged, card, controlsd, selfdrived), as `roadpilot sim` then `roadpilot device` run them:

  1. sim mode: the simulator's car is identified by its ECUs' firmware (no override), and nothing of that run
     is left for the next one (same data folder);
  2. device mode on a bus of another make (Honda-like frames built with opendbc's packer), no --car: card
     queries it, nothing answers, the car is not recognised: the only frames that leave are diagnostic
     queries, and the driver sees "Car Not Recognised";
  3. the same bus with a wrong --car: not a single frame leaves, and the driver sees the mismatch.
What left the adapter is read from canbridged's echo on `can` (bus 128+n: frames the adapter took).
"""

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from opendbc.can import CANPacker
from opendbc.car import Bus
from opendbc.car.honda.values import CAR as HONDA
from opendbc.car.honda.values import DBC as HONDA_DBC

from cereal import messaging
from selfdrive.car.card import FORCED_CAR_ENV
from selfdrive.car.fingerprinting import is_diagnostic
from selfdrive.car.tests.helpers import Timed, write_recording
from tools.cli import stop_manager
from tools.sim.bridge import manager_env
from tools.sim.lib.simulation import SimConfig

CIVIC_DBC = HONDA_DBC[HONDA.HONDA_CIVIC][Bus.pt]
ONLY = "canbridged,card,controlsd,selfdrived"
CIVIC_MESSAGES = ("POWERTRAIN_DATA", "ENGINE_DATA", "STEERING_SENSORS", "WHEEL_SPEEDS", "CAR_SPEED", "SCM_FEEDBACK",
                  "STANDSTILL")


def honda_like(seconds: float) -> list[Timed]:
    """A Honda powertrain bus at 100 Hz: valid checksums and counters, nothing a Toyota port reads."""
    packer = CANPacker(CIVIC_DBC)
    out = []
    for k in range(int(seconds * 100)):
        for name in CIVIC_MESSAGES:
            has_counter = "COUNTER" in packer.dbc.name_to_msg[name].sigs
            address, dat, _ = packer.make_can_msg(name, 0, {"COUNTER": k % 4} if has_counter else {})
            out.append((k * 0.01, 0, address, dat))
    return out


def new_prefix(monkeypatch) -> None:
    monkeypatch.setenv("ROADPILOT_PREFIX", f"t{uuid.uuid4().hex[:12]}")


class Run:
    """The manager in `mode` with the car's processes only, as a child; what it sent, and what the driver saw."""

    def __init__(self, tmp_path: Path, name: str, mode: str, env: dict[str, str]):
        self.log = tmp_path / f"{name}.log"
        self.socks = {s: messaging.sub_sock(s) for s in ("can", "selfdriveState", "carParams")}
        self.sent: list[tuple[int, int]] = []  # (address, bus) of every frame the adapter sent
        self.car_params = None
        self.alerts: list[tuple[str, str, str]] = []
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "selfdrive.manager.manager", mode], stdout=out,
                                         stderr=subprocess.STDOUT, env={**os.environ, "ONLY": ONLY, **env})

    def pump(self) -> None:
        for m in messaging.drain_sock(self.socks["can"]):
            self.sent += [(c.address, c.src - 128) for c in m.can if c.src >= 128]
        for m in messaging.drain_sock(self.socks["selfdriveState"]):
            sd = m.selfdriveState
            self.alerts.append((sd.alertType, sd.alertText1, sd.alertText2))
        for m in messaging.drain_sock(self.socks["carParams"]):
            self.car_params = m.carParams

    def wait(self, pred, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not pred(self):
            assert self.proc.poll() is None, f"the manager exited: {self.log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"{what} not seen in {timeout} s: {self.log.read_text()[-3000:]}"
            time.sleep(0.05)
            self.pump()

    def run_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.05)
            self.pump()

    def stop(self) -> str:
        try:
            assert stop_manager(self.proc) == 0
            self.pump()
        finally:
            for sock in self.socks.values():
                sock.close()
        return self.log.read_text()

    def alerted(self, alert_type: str) -> tuple[str, str, str] | None:
        return next((a for a in self.alerts if a[0] == alert_type), None)


def test_sim_then_another_make_then_a_wrong_car(tmp_path, monkeypatch):
    # 1. sim mode: the simulator's car, identified by firmware with no override anywhere
    cfg = SimConfig(camera=False, driver="manual")
    sim = Run(tmp_path, "sim", "sim", {**manager_env(cfg), "ONLY": ONLY + ",bridge"})
    try:
        sim.wait(lambda r: r.car_params is not None, 60, "the simulated car's carParams")
        cp = sim.car_params
        assert (cp.carFingerprint, str(cp.fingerprintSource)) == ("LEXUS_CTH", "fw") and len(cp.carFw) == 5
        assert cp.carVin.startswith("JTH") and not cp.dashcamOnly
        sim.wait(lambda r: "safety: enabled" in r.log.read_text(), 30, "canbridged enabling the car's safety mode")
    finally:
        sim.stop()
    assert any(is_diagnostic(a) for a, _ in sim.sent)  # the firmware queries went out first

    # 2. device mode on a Honda-like bus, no --car, the same data folder: not recognised, only queries leave
    recording = write_recording(tmp_path / "honda", honda_like(2.0))
    device_env = {"ROADPILOT_CAN_BACKEND": f"replay:{recording}?dbc0={CIVIC_DBC}&loop=1"}
    new_prefix(monkeypatch)
    honda = Run(tmp_path, "honda", "device", device_env)
    try:
        honda.wait(lambda r: r.alerted("carUnrecognized/permanent"), 60, "the not-recognised alert")
        honda.run_for(2.0)  # controlsd's heartbeat and card's cycles go on: still nothing may leave
    finally:
        log = honda.stop()
    assert honda.alerted("carUnrecognized/permanent")[1:] == ("Car Not Recognised",
                                                             "Dashcam Mode: Nothing Is Sent to the Car")
    assert honda.car_params.dashcamOnly and honda.car_params.carFingerprint == "MOCK"
    assert honda.sent and all(is_diagnostic(a) for a, _ in honda.sent), honda.sent[:10]
    assert "safety: dashcam" in log and "LEXUS_CTH" not in log  # nothing of the simulator's run was reused

    # 3. the same bus with a wrong --car: nothing at all leaves, and the mismatch is named
    new_prefix(monkeypatch)
    wrong = Run(tmp_path, "wrong", "device", {**device_env, FORCED_CAR_ENV: "TOYOTA_RAV4"})
    try:
        wrong.wait(lambda r: r.alerted("carMismatch/permanent"), 60, "the mismatch alert")
        wrong.run_for(1.0)
    finally:
        log = wrong.stop()
    assert wrong.alerted("carMismatch/permanent")[1] == "Car Does Not Match --car TOYOTA_RAV4"
    assert wrong.sent == []
    status = json.loads(log.rsplit("canbridged status ", 1)[1].splitlines()[0])["status"]
    assert status["car"] == "waiting for the bus to agree" and status["mode"] == "silent:0"
    assert status["tx"] > 0 and status.get("tx_sent", 0) == 0  # card did try: the bridge refused every frame
