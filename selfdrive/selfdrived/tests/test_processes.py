"""The real plannerd, controlsd and selfdrived as processes, with faults injected around them.

The test itself is card: it sends carState at 100 Hz in lockstep with selfdrived (each carState is
answered by one selfdriveState before the next is sent), so "the answer to this carState" is exactly
the first selfdriveState created after it was sent.
"""

import math
import signal
import subprocess
import sys
import time

import pytest

from cereal import car, messaging
from common.params import Params
from common.realtime import DT_CTRL
from selfdrive.controls.tests.synth import car_params
from selfdrive.selfdrived.selfdrived import POLL_S

DAEMONS = {"plannerd": "selfdrive.controls.plannerd", "controlsd": "selfdrive.controls.controlsd",
           "selfdrived": "selfdrive.selfdrived.selfdrived"}
STARTUP_S = 60.0  # five Python processes importing numpy/scipy/osqp on two shared cores


def start_fake(*services: str) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-m", "selfdrive.selfdrived.tests.fake_inputs", *services],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


class Rig:
    def __init__(self):
        Params().put("CarParams", car_params().to_bytes())
        self.procs = {"modeld": start_fake("modelV2"),
                      "others": start_fake("liveCalibration", "deviceState", "managerState")}
        for name, module in DAEMONS.items():
            self.procs[name] = subprocess.Popen([sys.executable, "-m", module])
        self.pm = messaging.PubMaster(["carState"])
        self.sd_sock = messaging.sub_sock("selfdriveState")
        self.cc_sock = messaging.sub_sock("carControl")
        self.carcontrols: list = []
        self.next_send = time.monotonic()
        self.clean = True  # every lockstep gap so far was shorter than selfdrived's poll timeout

    def close(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
            p.wait(10)

    def send(self, **fields) -> int:
        CS = car.CarState.new_message()
        CS.vEgo, CS.vEgoRaw, CS.canValid, CS.gearShifter = 20.0, 20.0, True, "drive"
        CS.cruiseState.available, CS.cruiseState.speed = True, 25.0
        for k, v in fields.items():
            if k == "cruise":
                CS.cruiseState.enabled = v
            else:
                setattr(CS, k, v)
        msg = messaging.new_message("carState")
        msg.carState = CS
        time.sleep(max(0.0, self.next_send - time.monotonic()))
        self.next_send = max(self.next_send + DT_CTRL, time.monotonic() - DT_CTRL)
        t = msg.logMonoTime = time.monotonic_ns()
        self.pm.send("carState", msg)
        return t

    def answer(self, sent_ns: int, timeout: float = 0.5):
        """The first selfdriveState created after `sent_ns`, or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = messaging.recv_one(self.sd_sock, 20)
            if m is not None and m.logMonoTime > sent_ns:
                self.carcontrols += messaging.drain_sock(self.cc_sock)
                return m
        return None

    def tick(self, timeout: float = 0.5, **fields):
        gap_start = time.monotonic()
        sent = self.send(**fields)
        if time.monotonic() - gap_start > 0.75 * POLL_S:
            self.clean = False  # selfdrived may have run a cycle without carState in between
        return self.answer(sent, timeout)

    def engage(self) -> None:
        deadline = time.monotonic() + STARTUP_S
        while True:  # until every input is healthy and the slow joiners are connected
            sd = self.tick(timeout=0.05)
            if sd is not None and sd.selfdriveState.engageable:
                break
            assert time.monotonic() < deadline, f"never engageable: {sd and sd.selfdriveState.alertText2}"
        for _ in range(100):  # a second of steady lockstep at 100 Hz, so every rate check is settled
            self.tick()
        sd = self.tick(cruise=True)
        for _ in range(20):
            if sd is not None and sd.selfdriveState.enabled:
                return
            sd = self.tick(cruise=True)
        raise AssertionError(f"did not engage: {sd and sd.selfdriveState}")


@pytest.fixture
def rig():
    r = Rig()
    yield r
    r.close()


class TestEngagement:
    def test_brake_disengages_in_the_same_cycle_and_stale_carstate_is_immediate_disable(self, rig):
        for _attempt in range(5):  # a loaded machine can stall an input long enough to soft-disable us: engage again
            rig.engage()
            for _ in range(30):
                sd = rig.tick(cruise=True)
            if sd is not None and sd.selfdriveState.state == "enabled" and sd.valid:
                break
            for _ in range(400):  # the soft disable runs out (cruise off) before the next try
                off = rig.tick(cruise=False)
                if off is not None and not off.selfdriveState.enabled:
                    break
        assert sd.selfdriveState.state == "enabled" and sd.valid
        cc = rig.carcontrols[-1].carControl
        assert cc.enabled and cc.latActive and cc.longActive and rig.carcontrols[-1].valid
        assert all(math.isfinite(getattr(cc.actuators, f)) for f in ("accel", "torque", "curvature"))

        for _attempt in range(5):  # only a clean lockstep gap proves "same cycle"; retry if the machine stalled us
            rig.clean = True
            sd = rig.tick(cruise=True, brakePressed=True)
            if rig.clean:
                break
            rig.tick(cruise=True)
            rig.engage()
        assert rig.clean
        assert sd.selfdriveState.state == "disabled" and not sd.selfdriveState.enabled
        assert sd.selfdriveState.alertType == "brakePressed/userDisable"

        rig.tick(cruise=False)
        rig.engage()
        # card stops: no carState at all. selfdrived keeps publishing from its own timeout
        stopped = time.monotonic()
        while True:
            m = messaging.recv_one(rig.sd_sock, 100)
            assert m is not None, "selfdrived stopped publishing without carState"
            if m.logMonoTime * 1e-9 > stopped and not m.selfdriveState.enabled:
                break
            assert time.monotonic() - stopped < 1.0, "still engaged 1 s after carState stopped"
        elapsed = m.logMonoTime * 1e-9 - stopped
        print(f'immediate disable after {elapsed:.3f} s')
        assert elapsed < 0.3
        assert m.selfdriveState.alertType == "carStateStale/immediateDisable"
        assert m.selfdriveState.alertStatus == "critical" and m.selfdriveState.alertText1
        # the heartbeat keeps coming, released
        time.sleep(0.1)
        late = messaging.drain_sock(rig.cc_sock)
        assert len(late) >= 3 and not late[-1].carControl.enabled and not late[-1].valid

    def test_model_dying_while_engaged_soft_disables_with_alert_within_half_a_second(self, rig):
        rig.engage()
        for _ in range(30):
            rig.tick(cruise=True)
        rig.procs["modeld"].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        while True:
            sd = rig.tick(cruise=True)
            assert sd is not None
            if sd.selfdriveState.state == "softDisabling":
                break
            assert sd.selfdriveState.state == "enabled"
            assert time.monotonic() - killed < 2.0, "no soft disable"
        elapsed = sd.logMonoTime * 1e-9 - killed
        print(f'soft disable after {elapsed:.3f} s')
        assert elapsed < 0.5
        s = sd.selfdriveState
        assert s.alertType == "commIssue/softDisable" and s.alertText1 == "TAKE CONTROL IMMEDIATELY"
        assert s.alertSize == "full" and s.active  # still steering while the driver takes over
        assert not sd.valid
