"""calibrationd: road camera frames + modelV2 -> the road camera's pitch and yaw relative to the car ->
liveCalibration, once per camera frame (its answer to that frame, frameId: the lockstep simulator waits for it, so
calibration never falls behind a world faster than real time), or at 4 Hz while no frame comes.

Two measurements (selfdrive/locationd/calibration.py):
  - every VP_EVERY-th camera frame (VP_EVERY_CALIBRATED-th once calibrated), the lane lines' vanishing point
    (selfdrive/locationd/vanishing_point.py), with the camera roadCameraState describes, while the car drives
    straight and fast enough on a straight road (see straight_and_moving: the model's path, carState's steering
    and speed; for a video without a car, the nominal speed it was given (ROADPILOT_NOMINAL_SPEED), else the speed
    the model's path shows);
  - the model's path while driving straight, when no vanishing point has been seen lately (roads without lines).
Progress (calPerc) and uncertainty (rpyCalibSpread: the spread of the blocks) are published with it. The estimate is
stored in the CalibrationParams param whenever it changes and read back at start, so a restart goes on from the last
calibration. The store is written in the background (a full disk costs the stored copy, never the calibration in
memory); a stored record that is corrupt reads as none (common/params_keys.py checks its shape) and calibration
starts over.
"""

import math
import os
import zlib

import cv2
import numpy as np

from cereal import messaging
from cereal.visionipc import VisionIpcClient, VisionStreamType
from common import clock
from common.params import Params
from common.swaglog import cloudlog, cloudlog_bind
from common.transformations.camera_file import default_camera, frame_camera
from selfdrive.controls.lib.drive_helpers import curvature_from_steering
from selfdrive.locationd.calibration import MAX_CURVATURE, MIN_SPEED, Calibrator, path_fit, path_speed
from selfdrive.locationd.vanishing_point import mount_angles, vanishing_point
from selfdrive.modeld.constants import CAMERA_HEIGHT

PUBLISHES = ("liveCalibration",)
PUBLISH_S = 0.25
NOMINAL_SPEED_ENV = "ROADPILOT_NOMINAL_SPEED"
THUMB = (64, 36)            # px: what "the picture changed" compares
MIN_CHANGE = 0.1            # grey levels, mean absolute: standing still 0-0.04, driving 0.12-1.4 (sim, udacity)
MODEL_MAX_CURVATURE = 2e-3  # 1/m (a 500 m radius): beyond this the road ahead bends, whatever the car does
VP_EVERY = 1                # every frame while calibrating: ~5 ms each (tools/bench), calibrated in seconds of straight
VP_EVERY_CALIBRATED = 4     # then every 4th: a block takes 8 s instead of 2, plenty to follow a mount that shifts


def fill_live_calibration(lc, cal: Calibrator) -> None:
    lc.calStatus = cal.status
    lc.calPerc = cal.percent
    lc.rpyCalib = [float(v) for v in cal.rpy]
    lc.rpyCalibSpread = [float(v) for v in cal.spread]
    lc.validBlocks = cal.valid_blocks
    lc.height = [CAMERA_HEIGHT]


def nominal_speed(env: dict[str, str]) -> float | None:
    """A video without a car (evaluation: `roadpilot device --video F --assume-speed S`) is taken to move at this."""
    try:
        v = float(env.get(NOMINAL_SPEED_ENV) or "nan")
    except ValueError:
        return None
    return v if math.isfinite(v) and v >= 0 else None


def straight_and_moving(sm, nominal: float | None = None) -> bool:
    """Whether a frame now shows the car driving along a straight road: the model's path must not bend much (it sees
    the road ahead: a car that does not steer may still be on a curve), and then carState's speed and steering when
    the car's bus reports them (through carParams' steering ratio and wheelbase); without a car, the nominal speed
    when given, else the speed the model's path shows. The model's bound is loose (MODEL_MAX_CURVATURE): on real
    roads today's model bends its path on a straight road (1.2e-3 1/m median on the udacity clip, issue 18)."""
    if not sm.seen["modelV2"]:
        return False
    pos = sm["modelV2"].position
    fit = path_fit(list(pos.x), list(pos.y), list(pos.z))
    if fit is None or not abs(fit[2]) < MODEL_MAX_CURVATURE:
        return False
    if sm.seen["carState"] and sm.seen["carParams"] and sm["carState"].canValid:
        cs, cp = sm["carState"], sm["carParams"]
        if not (cp.steerRatio > 0 and cp.wheelbase > 0):
            return False
        k = curvature_from_steering(cs.steeringAngleDeg, cp.steerRatio, cp.wheelbase)
        return cs.vEgo > MIN_SPEED and abs(k) < MAX_CURVATURE
    if nominal is not None:
        return nominal > MIN_SPEED
    return path_speed(list(pos.x)) > MIN_SPEED


def thumbnail(y_plane) -> np.ndarray:
    """The picture's block means. The centre crop that whole blocks cover: OpenCV's area resize by a whole
    factor is ~10x cheaper than by a fractional one (0.3 against 3.7 ms for a 1164x874 frame)."""
    h, w = y_plane.shape[:2]
    fy, fx = max(1, h // THUMB[1]), max(1, w // THUMB[0])
    oy, ox = (h - fy * THUMB[1]) // 2, (w - fx * THUMB[0]) // 2
    return cv2.resize(y_plane[max(0, oy):oy + fy * THUMB[1], max(0, ox):ox + fx * THUMB[0]], THUMB,
                      interpolation=cv2.INTER_AREA)


def moved(last: np.ndarray | None, thumb: np.ndarray) -> bool:
    """Whether the picture changed since the last frame measured: the same picture again (a camera or a simulator
    that stands still while the car's bus says it moves) is the same measurement again, and 40 copies of one would
    make a block of it."""
    return last is None or last.shape != thumb.shape or float(cv2.absdiff(last, thumb).mean()) >= MIN_CHANGE


def main() -> None:
    cloudlog_bind(name="calibrationd")
    params = Params()
    cal = Calibrator.from_bytes(params.get("CalibrationParams"))
    cloudlog.info("calibrationd: start", extra={"rpy": cal.rpy, "valid_blocks": cal.valid_blocks})
    sm = messaging.SubMaster(["modelV2", "carState", "carParams", "roadCameraState"])
    pm = messaging.PubMaster(list(PUBLISHES))
    client = VisionIpcClient(VisionStreamType.ROAD, conflate=False)
    last_pub = -math.inf
    vp_seen = vp_used = 0
    nominal = nominal_speed(dict(os.environ))
    last_thumb = prev_thumb = None  # the picture of the last vanishing point used, of the last frame
    while True:
        if client.connected or client.connect(0.0):
            frame = client.recv(int(PUBLISH_S * 1000))  # paced by the camera
            sm.update(0)
        else:
            frame = None  # no camera (yet): the model's path alone, paced by the model
            sm.update(int(PUBLISH_S * 1000))
        changed = False
        frame_id = frame.frame_id if frame is not None else 0
        picture_moves, vp = True, None  # without a camera: the model's path alone
        if frame is not None:
            every = VP_EVERY_CALIBRATED if cal.status == "calibrated" else VP_EVERY
            do_vp = frame.frame_id % every == 0 and straight_and_moving(sm, nominal)
            cam = frame_camera(sm["roadCameraState"], frame.width, frame.height) if sm.seen["roadCameraState"] \
                else default_camera(frame.width, frame.height)
            try:
                with frame:
                    thumb = thumbnail(frame.y)
                    if do_vp and moved(last_thumb, thumb):
                        # RANSAC's draws follow the picture: the same picture gives the same point, whatever its id
                        vp = vanishing_point(frame.y, cam, horizon_y=-math.tan(cal.rpy[1]),
                                             seed=zlib.crc32(thumb.tobytes()))
                    intact = frame.valid_after_read()
            except Exception as e:  # FrameOverwritten: the camera lapped us while we read; the next one will do
                cloudlog.debug("calibrationd: frame overwritten", extra={"err": str(e)})
                thumb, intact = None, False
            # a picture that stands still (a frozen camera, the simulator's world waiting for the stack) shows the
            # model the same road again and again: it is not a new measurement, whatever the speedometer says
            picture_moves = intact and moved(prev_thumb, thumb)
            prev_thumb = thumb if intact else prev_thumb
            vp_seen += int(do_vp)
            if vp is not None and intact:
                vp_used += 1
                last_thumb = thumb
                changed = cal.feed_vp(*mount_angles(vp))
        if sm.updated["modelV2"] and sm.valid["modelV2"] and picture_moves:
            md = sm["modelV2"]
            pos = md.position
            changed = cal.feed(list(pos.x), list(pos.y), list(pos.z), md.confidence) or changed
        if changed:
            params.put_nonblocking("CalibrationParams", cal.to_bytes())
            cloudlog.info("calibrationd: update", extra={"rpy_deg": [math.degrees(v) for v in cal.rpy],
                                                          "status": cal.status, "valid_blocks": cal.valid_blocks,
                                                          "vanishing_points": f"{vp_used}/{vp_seen}"})
        now = clock.monotonic()  # 4 Hz of the world's time in lockstep (common.clock)
        if frame is not None or changed or now - last_pub >= PUBLISH_S:
            msg = messaging.new_message("liveCalibration")
            fill_live_calibration(msg.liveCalibration, cal)
            msg.liveCalibration.frameId = frame_id
            pm.send("liveCalibration", msg)
            last_pub = now


if __name__ == "__main__":
    main()
