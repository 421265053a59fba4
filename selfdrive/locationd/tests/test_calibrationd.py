"""calibrationd as a real process: the test plays modeld (modelV2 from an ideal model, warped with the newest
liveCalibration), checks what calibrationd publishes and stores, and restarts it."""

import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cereal import messaging
from common.params import Params
from selfdrive.locationd.calibration import Calibrator
from selfdrive.locationd.tests.test_calibration import MOUNT, ideal_path
from selfdrive.modeld.constants import CAMERA_HEIGHT, T_PATH

TOL = math.radians(0.01)


class Calibrationd:
    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.proc: subprocess.Popen | None = None
        self.sock = messaging.sub_sock("liveCalibration")
        self.pm = messaging.PubMaster(["modelV2"])

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "selfdrive.locationd.calibrationd"],
                                     stderr=open(self.tmp_path / "calibrationd.stderr", "a"))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)

    def close(self) -> None:
        self.stop()
        self.sock.close()
        self.pm.close()

    def alive(self) -> None:
        assert self.proc.poll() is None, (self.tmp_path / "calibrationd.stderr").read_text()

    def first(self, timeout: float = 20.0):
        """The first liveCalibration of a (re)started daemon."""
        deadline = time.monotonic() + timeout
        while (m := messaging.recv_one(self.sock, 100)) is None:
            assert time.monotonic() < deadline, "no liveCalibration"
            self.alive()
        return m

    def send_model(self, rpy, mount, valid: bool = True) -> None:
        p = ideal_path(mount, rpy)
        msg = messaging.new_message("modelV2", valid=valid)
        pos = msg.modelV2.position
        pos.x, pos.y, pos.z, pos.t = ([float(v) for v in a] for a in (p[:, 0], p[:, 1], p[:, 2], T_PATH))
        msg.modelV2.confidence = 0.9
        self.pm.send("modelV2", msg)


@pytest.fixture
def daemon(tmp_path):
    d = Calibrationd(tmp_path)
    yield d
    d.close()


def _rpy(m) -> tuple[float, ...]:
    return tuple(m.liveCalibration.rpyCalib)


def test_calibrates_stores_and_resumes_after_a_restart(daemon):
    params = Params()
    assert params.get("CalibrationParams") is None
    daemon.start()
    m = daemon.first()
    lc = m.liveCalibration
    assert m.valid and lc.calStatus == "uncalibrated" and lc.calPerc == 0 and lc.validBlocks == 0
    assert _rpy(m) == (0.0, 0.0, 0.0) and list(lc.height) == pytest.approx([CAMERA_HEIGHT])
    # published without any input, at its 4 Hz
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < 1.0:
        n += messaging.recv_one(daemon.sock, 100) is not None
    assert 2 <= n <= 6, f"{n} liveCalibration in 1 s"

    # modelV2 that says it is not valid is not used, however convincing its path
    for _ in range(300):
        daemon.send_model((0.0, 0.0, 0.0), (math.radians(5.0), math.radians(-5.0)), valid=False)
        time.sleep(0.002)
    time.sleep(0.3)
    last = messaging.drain_sock(daemon.sock)[-1]
    assert last.liveCalibration.validBlocks == 0 and _rpy(last) == (0.0, 0.0, 0.0)

    # play modeld: each path made with the newest calibration, at 200 Hz to be quick
    rpy, deadline, states = (0.0, 0.0, 0.0), time.monotonic() + 30, []
    while not (states and states[-1].calStatus == "calibrated"):
        assert time.monotonic() < deadline, f"not calibrated: {states[-1] if states else None}"
        daemon.alive()
        daemon.send_model(rpy, MOUNT)
        for m in messaging.drain_sock(daemon.sock):
            states.append(m.liveCalibration)
            rpy = tuple(m.liveCalibration.rpyCalib)
        time.sleep(0.005)
    final = states[-1]
    assert final.calPerc == 100 and final.validBlocks >= 4
    assert abs(final.rpyCalib[1] - MOUNT[0]) < TOL and abs(final.rpyCalib[2] - MOUNT[1]) < TOL
    assert [s.calPerc for s in states] == sorted(s.calPerc for s in states), "progress only grows"
    assert any(0 < s.calPerc < 100 and s.calStatus == "uncalibrated" for s in states)

    # the store is written in the background: on a loaded machine the newest block may not be in it yet
    deadline = time.monotonic() + 10
    while (stored := Calibrator.from_bytes(params.get("CalibrationParams"))).valid_blocks != final.validBlocks:
        assert time.monotonic() < deadline, f"stored {stored.valid_blocks} blocks, published {final.validBlocks}"
        time.sleep(0.05)
    assert np.allclose(stored.rpy, final.rpyCalib, atol=1e-6)

    # a restart goes on from the stored calibration
    daemon.stop()
    messaging.drain_sock(daemon.sock)
    daemon.start()
    m = daemon.first()
    assert m.liveCalibration.calStatus == "calibrated" and m.liveCalibration.validBlocks == final.validBlocks
    assert np.allclose(_rpy(m), final.rpyCalib, atol=1e-6)


@pytest.mark.parametrize("raw", [b"\x00garbage{", b'{"rpy": [0.0, NaN, 0.0], "blocks": [], "valid_blocks": 9}',
                                 b'{"rpy": [0.0, 0.3, 0.0], "blocks": [], "valid_blocks": 9}',
                                 b'{"rpy": [0.0, 0.0, 0.0], "blocks": [], "valid_blocks": 1e999}'])
def test_a_corrupt_stored_calibration_is_ignored(daemon, raw):
    with open(os.path.join(Params().root, "CalibrationParams"), "wb") as f:  # as a bad disk or a hand edit leaves it
        f.write(raw)
    daemon.start()
    m = daemon.first()
    assert m.liveCalibration.calStatus == "uncalibrated" and m.liveCalibration.validBlocks == 0
    assert _rpy(m) == (0.0, 0.0, 0.0)
    # and it calibrates from scratch as usual
    rpy, deadline = (0.0, 0.0, 0.0), time.monotonic() + 30
    while rpy[2] == 0.0:
        assert time.monotonic() < deadline, "no calibration from a fresh start"
        daemon.alive()
        daemon.send_model(rpy, MOUNT)
        for m in messaging.drain_sock(daemon.sock):
            rpy = tuple(m.liveCalibration.rpyCalib)
        time.sleep(0.005)
    assert abs(rpy[2] - MOUNT[1]) < TOL


def test_frames_count_for_the_vanishing_point_only_driving_straight_and_fast_enough():
    from types import SimpleNamespace as NS

    from selfdrive.locationd.calibrationd import nominal_speed, straight_and_moving

    class FakeSubMaster(dict):
        """What straight_and_moving reads of a SubMaster: the messages by service, and which were seen."""

    def sm(v=25.0, angle=0.0, can_valid=True, model_speed=20.0, car=True, road_curvature=0.0):
        x = [model_speed * t for t in T_PATH]
        out = FakeSubMaster(carState=NS(vEgo=v, steeringAngleDeg=angle, canValid=can_valid),
                            carParams=NS(steerRatio=15.0, wheelbase=2.7),
                            modelV2=NS(position=NS(x=x, y=[road_curvature * d * d / 2 for d in x], z=[0.0] * len(x))))
        out.seen = {"carState": car, "carParams": car, "modelV2": True}
        return out

    assert straight_and_moving(sm())                       # a car on its bus, straight at 25 m/s
    assert not straight_and_moving(sm(angle=5.0))          # turning: the lines bend (5 deg of wheel: 1/470 m)
    assert not straight_and_moving(sm(v=5.0))              # too slow
    # the car does not steer, but the road ahead bends (a driver drifting out of a curve): its lines meet elsewhere
    assert not straight_and_moving(sm(road_curvature=4e-3))
    assert straight_and_moving(sm(road_curvature=1.2e-3))  # today's model bends a straight road this much
    # a video without a car: the nominal speed when given, else the model's
    assert not straight_and_moving(sm(can_valid=False, model_speed=3.0))
    assert straight_and_moving(sm(can_valid=False, model_speed=23.0))
    assert straight_and_moving(sm(can_valid=False, car=False), nominal=25.0)
    assert not straight_and_moving(sm(can_valid=False, model_speed=23.0), nominal=0.0)
    assert nominal_speed({"ROADPILOT_NOMINAL_SPEED": "25"}) == 25.0
    assert nominal_speed({"ROADPILOT_NOMINAL_SPEED": "fast"}) is None and nominal_speed({}) is None
