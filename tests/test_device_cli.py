"""`roadpilot device`: a missing camera or an adapter that cannot open is a clear error at start; with a
camera and an adapter the stack runs on them (here a dash-cam video and python-can's virtual bus, silent: no car)."""

import math
import os
import signal
import subprocess
import sys
import time

import pytest

from cereal import messaging
from common.paths import routes_dir
from selfdrive.loggerd.logreader import LogReader
from tools import cli

# ../shared beside the checkout (this file is <checkout>/tests/)
VIDEO = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "udacity-dashcam", "solidWhiteRight.mp4")


@pytest.mark.parametrize(("args", "says"), [
    (["--can", "virtual:x", "--camera", "/dev/video-none"], "camera /dev/video-none not found"),
    (["--can", "virtual:x", "--video", "/no/such.mp4"], "video file not found: /no/such.mp4"),
    (["--can", "nochannel", "--camera", "/dev/null"], "CAN adapter 'nochannel' cannot be opened"),
    (["--can", "no_such_interface:can0", "--camera", "/dev/null"], "CAN adapter 'no_such_interface:can0'"),
    (["--can", "sim", "--camera", "/dev/null"], "use `roadpilot sim`"),
    (["--can", "virtual:x", "--camera", "/dev/null", "--car", "TOYOTA_NOPE"], "unknown platform 'TOYOTA_NOPE'"),
    (["--can", "virtual:x", "--camera", "/dev/null", "--camera-params", "/no/cam.json"], "cannot read camera file"),
    (["--can", "virtual:x", "--camera", "/dev/null", "--fov", "5"], "10..170 degrees"),
    (["--can", "virtual:x", "--camera", "/dev/null", "--fov", "60", "--camera-params", "c.json"], "not both"),
    (["--can", "virtual:x", "--camera", "/dev/null", "--assume-speed", "25"], "--assume-speed is for a --video"),
])
def test_missing_camera_or_bad_adapter_is_an_error_at_start(args, says, capsys):
    assert cli.main(["device", *args]) == 2
    assert says in capsys.readouterr().err


@pytest.mark.skipif(not os.path.isfile(VIDEO), reason="the Udacity dash-cam video (../shared/data) is not here")
def test_device_mode_runs_the_stack_on_the_camera_and_the_adapter():
    # a dash-cam clip and an adapter on a silent bus (the car is off): the camera's side runs, and card, forced to a
    # platform, waits for the car's bus to read its wiring from instead of guessing it (nothing to plan, nothing sent)
    p = subprocess.Popen([sys.executable, "-m", "tools.cli", "device", "--video", VIDEO, "--fov", "60",
                          "--can", f"virtual:rp-dev-{os.getpid()}", "--car", "TOYOTA_RAV4"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    socks = {s: messaging.sub_sock(s) for s in ("modelV2", "liveCalibration", "carState", "sendcan")}
    try:
        # 12 s at least (the clip's frames for calibration), then until the camera's side answered and calibrated
        # (on a loaded machine modeld and calibrationd may take longer than that to start)
        answered: set[str] = set()
        cal_perc, start = 0, time.monotonic()
        while time.monotonic() - start < 12 or (time.monotonic() - start < 120 and p.poll() is None and
                                                 (not {"modelV2", "liveCalibration"} <= answered or cal_perc < 25)):
            for name, sock in socks.items():
                while (dat := sock.receive(0)) is not None:
                    answered.add(name)
                    if name == "liveCalibration":
                        cal_perc = messaging.log_from_bytes(dat).liveCalibration.calPerc
            time.sleep(0.1)
    finally:
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=30)
        for sock in socks.values():
            sock.close()
    assert p.returncode == 0, out
    assert "car forced to TOYOTA_RAV4" in out
    assert "camera model: a 60 deg horizontal field of view" in out
    routes = os.listdir(routes_dir())
    assert len(routes) == 1, out
    events = list(LogReader(os.path.join(routes_dir(), routes[0]), sort_by_time=False))
    seen = {ev.which() for ev in events}
    # the video's own 960x540 frames, with the camera it was said to be: the route keeps it for replay and render
    cam = next(ev.roadCameraState for ev in events if ev.which() == "roadCameraState")
    assert (cam.width, cam.height, cam.cameraFrom) == (960, 540, "fov 60")
    assert list(cam.intrinsics) == pytest.approx([831.38, 831.38, 480.0, 270.0], abs=0.01)
    # calibrationd measured the mount from the lane lines while the clip played (no CAN speed: the model's) and
    # its blocks sit where the hand-labelled lines put the horizon (selfdrive/locationd/tests)
    cals = [ev.liveCalibration for ev in events if ev.which() == "liveCalibration"]
    last = cals[-1]
    assert last.calPerc >= 25, [(c.calPerc, list(c.rpyCalib)) for c in cals[-3:]]
    assert math.degrees(last.rpyCalib[1]) == pytest.approx(-2.32, abs=0.5)
    assert abs(math.degrees(last.rpyCalib[2])) < 0.5
    # the camera's frames reached the model; the car's side waited for the bus, said so, and sent nothing
    assert {"roadCameraState", "modelV2"} <= seen, sorted(seen)
    assert not {"carState", "carParams", "sendcan"} & (seen | answered), sorted(seen | answered)
    texts = [ev.logMessage.msg for ev in events if ev.which() == "logMessage"]
    assert any("waiting for CAN to read the car's wiring" in t for t in texts), texts[-5:]
