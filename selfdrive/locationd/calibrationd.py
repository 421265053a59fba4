"""calibrationd: modelV2 -> the road camera's pitch and yaw relative to the car -> liveCalibration (4 Hz).

The estimate comes from the model's path while driving straight (selfdrive/locationd/calibration.py); it is
stored in the CalibrationParams param whenever it changes and read back at start, so a restart goes on
from the last calibration. The store is written in the background (a full disk costs the stored copy, never
the calibration in memory); a stored record that is corrupt reads as none (common/params_keys.py checks its
shape) and calibration starts over.
"""

import math
import time

from cereal import messaging
from common.params import Params
from common.swaglog import cloudlog, cloudlog_bind
from selfdrive.locationd.calibration import Calibrator
from selfdrive.modeld.constants import CAMERA_HEIGHT

PUBLISH_S = 0.25


def fill_live_calibration(lc, cal: Calibrator) -> None:
    lc.calStatus = cal.status
    lc.calPerc = cal.percent
    lc.rpyCalib = [float(v) for v in cal.rpy]
    lc.rpyCalibSpread = [float(v) for v in cal.spread]
    lc.validBlocks = cal.valid_blocks
    lc.height = [CAMERA_HEIGHT]


def main() -> None:
    cloudlog_bind(name="calibrationd")
    params = Params()
    cal = Calibrator.from_bytes(params.get("CalibrationParams"))
    cloudlog.info("calibrationd: start", extra={"rpy": cal.rpy, "valid_blocks": cal.valid_blocks})
    sm = messaging.SubMaster(["modelV2"])
    pm = messaging.PubMaster(["liveCalibration"])
    last_pub = -math.inf
    while True:
        sm.update(int(PUBLISH_S * 1000))
        changed = False
        if sm.updated["modelV2"] and sm.valid["modelV2"]:
            md = sm["modelV2"]
            pos = md.position
            changed = cal.feed(list(pos.x), list(pos.y), list(pos.z), md.confidence)
        if changed:
            params.put_nonblocking("CalibrationParams", cal.to_bytes())
            cloudlog.info("calibrationd: update", extra={"rpy_deg": [math.degrees(v) for v in cal.rpy],
                                                          "status": cal.status, "valid_blocks": cal.valid_blocks})
        now = time.monotonic()
        if changed or now - last_pub >= PUBLISH_S:
            msg = messaging.new_message("liveCalibration")
            fill_live_calibration(msg.liveCalibration, cal)
            pm.send("liveCalibration", msg)
            last_pub = now


if __name__ == "__main__":
    main()
