"""The page in a real browser (Debian's headless chromium via Playwright) against real processes: camerad
serving dashcam footage over VisionIPC, uid, and synthesised services. It checks what a driver sees: the camera,
the path where the projection of modelV2's path falls, the alert, and a page that recovers when uid restarts."""

import base64
import dataclasses
import math
import os
import signal
import time

import cv2
import numpy as np
import pytest

from selfdrive.ui.tests import stack
from selfdrive.ui.tests.stack import Scene, SynthServices, needs_udacity
from selfdrive.ui.tests.test_overlay import ground_pixel

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                    reason=f"{CHROMIUM} missing: `tools/setup.sh --tests` installs Debian's chromium")
WAIT_MS = 30_000


def canvas_image(page) -> np.ndarray:
    """The canvas as BGR, in its own pixels (which are the camera's)."""
    url = page.evaluate("document.getElementById('view').toDataURL('image/png')")
    png = base64.b64decode(url.split(",", 1)[1])
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)


def colour_at(img: np.ndarray, u: float, v: float) -> np.ndarray:
    """Mean BGR of the 5x5 pixels around (u, v)."""
    r, c = round(v), round(u)
    return img[r - 2:r + 3, c - 2:c + 3].reshape(-1, 3).mean(axis=0)


CAM_60 = (480.0 / math.tan(math.radians(30.0)), 480.0, 270.0)  # f, cx, cy of the clip said to be 60 deg wide


def path_green(bgr: np.ndarray) -> bool:
    """The engaged path's tint (rgba(23, 230, 110, 0.5)) over a road: green well above red and above blue."""
    b, g, r = bgr
    return g - r > 40 and g - b > 20


@needs_udacity
@needs_chromium
def test_page_shows_camera_path_alert_and_recovers_after_uid_restarts(tmp_path):
    scene = Scene()
    services = SynthServices(scene)
    camerad = stack.start_camerad(tmp_path, stack.UDACITY, "--fov", "60")
    port = stack.free_port()
    uid = stack.start_uid(tmp_path, port)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 960})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_function("rpUi.frames >= 10 && rpUi.state && rpUi.state.overlay && rpUi.state.selfdrive",
                                   timeout=WAIT_MS)

            # the camera: a live picture, not a blank or frozen canvas
            img = canvas_image(page)
            assert img.shape == (540, 960, 3)  # the video's own frames
            sky = img[:200].astype(float)   # above the horizon: no overlay drawn there
            assert sky.std() > 10 and 40 < sky.mean() < 250, "the canvas does not show a picture"
            frames = page.evaluate("rpUi.frames")
            page.wait_for_function(f"rpUi.frames >= {frames + 10}", timeout=WAIT_MS)
            assert np.abs(canvas_image(page)[:200].astype(float) - sky).mean() > 1, "the picture does not move"

            # the path, where modelV2's path projects through the camera camerad said (60 deg across 960 px; worked
            # out by hand, with liveCalibration's pitch)
            for x in (8.0, 12.0, 20.0):
                on = ground_pixel(x, float(scene.path_y(x)), scene.rpy[1], scene.cam_height, *CAM_60)
                off = ground_pixel(x, -float(scene.path_y(x)), scene.rpy[1], scene.cam_height, *CAM_60)
                assert path_green(colour_at(img, *on)), f"no path at {x} m: {colour_at(img, *on)} at {on}"
                assert not path_green(colour_at(img, *off)), f"path drawn on the wrong side at {x} m ({off})"

            # the alert banner says what selfdriveState says, in its severity's colours; the border is engaged
            assert page.text_content("#alert1") == scene.alert1 and page.text_content("#alert2") == scene.alert2
            assert page.get_attribute("#alert", "class") == "alert-userPrompt" and page.is_visible("#alert")
            assert page.get_attribute("#stage", "class") == "state-enabled"
            assert page.text_content("#speed-value") == "90" and page.text_content("#set-value") == "108"
            page.screenshot(path=str(tmp_path / "ui.png"))
            services.scene = dataclasses.replace(scene, alert1="TAKE CONTROL IMMEDIATELY", alert2="",
                                                 alert_status="critical", state="softDisabling")
            page.wait_for_function("document.getElementById('alert1').textContent === 'TAKE CONTROL IMMEDIATELY'",
                                   timeout=WAIT_MS)
            assert page.get_attribute("#alert", "class") == "alert-critical"
            assert page.get_attribute("#stage", "class") == "state-softDisabling"

            # uid dies: the page says so; uid comes back on the same port: the page picks up by itself
            os.kill(uid.pid, signal.SIGKILL)
            uid.wait(10)
            page.wait_for_function("!rpUi.connected", timeout=WAIT_MS)
            assert page.is_visible("#conn") and "reconnecting" in page.text_content("#conn")
            services.scene = dataclasses.replace(scene, alert1="Back again", alert2="uid restarted")
            frames = page.evaluate("rpUi.frames")
            time.sleep(0.5)  # the page retries meanwhile: its backoff, not our timing, decides when it reconnects
            uid = stack.start_uid(tmp_path, port)
            page.wait_for_function(f"rpUi.connected && rpUi.connects >= 2 && rpUi.frames >= {frames + 10}",
                                   timeout=WAIT_MS)
            page.wait_for_function("document.getElementById('alert1').textContent === 'Back again'", timeout=WAIT_MS)
            assert not page.is_visible("#conn")
            img = canvas_image(page)
            assert path_green(colour_at(img, *ground_pixel(12.0, float(scene.path_y(12.0)), scene.rpy[1],
                                                           scene.cam_height, *CAM_60)))
            browser.close()
    finally:
        stack.stop(uid)
        stack.stop(camerad)
        services.close()
    assert (tmp_path / "ui.png").stat().st_size > 10_000
    print(f"screenshot: {tmp_path / 'ui.png'}")
