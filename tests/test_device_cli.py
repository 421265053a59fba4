"""`roadpilot device`: a missing camera or an adapter that cannot open is a clear error at start; with a
camera and an adapter the stack runs on them (here a dash-cam video and python-can's virtual bus, silent: no car)."""

import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cereal import messaging
from common.paths import routes_dir
from common.transformations.camera_file import frame_camera
from selfdrive.loggerd.logreader import LogReader
from selfdrive.ui.overlay import build_overlay
from tools import cli
from tools.train.evaluate_real import row_errors
from tools.train.real_lanes import load_labels

# ../shared beside the checkout (this file is <checkout>/tests/)
VIDEO = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "udacity-dashcam", "solidWhiteRight.mp4")
PASS_SLOTS = 177                          # 20 Hz slots in one pass of the 221-frame, 25 fps clip (8.84 s)
SLOT_SLACK = 3
LAST_LABELLED_SLOT = PASS_SLOTS + 160 + SLOT_SLACK   # clip frame 200 on the second pass


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
    p = subprocess.Popen([sys.executable, "-m", "tools.cli", "device", "--video", VIDEO, "--loop", "--fov", "60",
                          "--can", f"virtual:rp-dev-{os.getpid()}", "--car", "TOYOTA_RAV4"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    socks = {s: messaging.sub_sock(s) for s in ("modelV2", "liveCalibration", "carState", "sendcan")}
    try:
        # 12 s at least (the clip's frames for calibration), then until the camera's side answered and calibrated
        # and the model has seen the clip's second pass up to its last labelled frame (on a loaded machine modeld
        # and calibrationd may take longer than that to start)
        answered: set[str] = set()
        cal_perc, frame_id, start = 0, -1, time.monotonic()
        while time.monotonic() - start < 12 or (time.monotonic() - start < 120 and p.poll() is None and
                                                 (not {"modelV2", "liveCalibration"} <= answered or cal_perc < 25
                                                  or frame_id < LAST_LABELLED_SLOT)):
            for name, sock in socks.items():
                while (dat := sock.receive(0)) is not None:
                    answered.add(name)
                    if name == "liveCalibration":
                        cal_perc = messaging.log_from_bytes(dat).liveCalibration.calPerc
                    elif name == "modelV2":
                        frame_id = messaging.log_from_bytes(dat).modelV2.frameId
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
    # what the UI drew sits on the paint: its overlay of the route's modelV2 (the liveCalibration of the moment, the
    # frames' camera) against the clip frames whose lines were labelled without the model (tools/train/real_lanes)
    err = ui_lines_against_labels(events, frame_camera(cam))
    print(f"UI overlay vs labelled paint: near median {np.median(err['near']):.1f} px ({len(err['near'])} rows), "
          f"far {np.median(err['far']):.1f} px ({len(err['far'])} rows)")
    assert len(err["near"]) > 40 and len(err["far"]) > 40, err
    assert np.median(err["near"]) < 15.0 and np.median(err["far"]) < 25.0, \
        (np.median(err["near"]), np.median(err["far"]))


def ui_lines_against_labels(events, camera) -> dict[str, np.ndarray]:
    """|u| errors (px) of the UI overlay's ego lines at the labelled rows of the clip's labelled frames, near and
    far halves, on the clip's second pass (the first one is what calibrationd calibrates on). The video source shows
    clip frame floor(1.25 k) in slot k of a pass, and a pass of the 8.84 s clip is PASS_SLOTS slots
    (selfdrive/camerad/sources/video.py): labelled frames 0, 100, 200 are slots 177, 257, 337; a model answer
    within SLOT_SLACK slots of them counts (modeld drops frames when it is late)."""
    labels = load_labels()["frames"]
    models = [ev for ev in events if ev.which() == "modelV2"]
    cals = sorted(((ev.logMonoTime, list(ev.liveCalibration.rpyCalib)) for ev in events
                   if ev.which() == "liveCalibration"), key=lambda c: c[0])
    near, far = [], []
    for fr in labels.values():
        if fr["file"] != "udacity-dashcam/solidWhiteRight.mp4":
            continue
        slot = PASS_SLOTS + fr["index"] * 4 // 5
        ev = min(models, key=lambda e: abs(e.modelV2.frameId - slot))
        if abs(ev.modelV2.frameId - slot) > SLOT_SLACK:
            continue
        rpy = next((r for t, r in reversed(cals) if t <= ev.logMonoTime), (0.0, 0.0, 0.0))
        overlay = build_overlay(ev.modelV2, rpy, None, camera)
        for side, i in (("left", 1), ("right", 2)):
            band = np.array(overlay["lanes"][i]["pts"])
            centre = 0.5 * (band[: len(band) // 2] + band[len(band) // 2:][::-1])  # the band's two sides, averaged
            n, f, _ = row_errors(fr["lines"][side], centre)
            near.append(n)
            far.append(f)
    return {"near": np.concatenate(near or [np.zeros(0)]), "far": np.concatenate(far or [np.zeros(0)])}
