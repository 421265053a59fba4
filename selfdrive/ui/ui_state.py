"""The state message uid sends to every page, built once per update from the SubMaster (JSON-ready dict).

Everything the page shows comes from here, already in display-ready form (units in the key names), so the
page does no interpretation beyond drawing. A service that is not alive is reported as such (`alive`), and
its values are left out rather than shown stale (`fresh`): an absent model draws no path, an absent selfdrived shows
"no system state" instead of the last alert.
"""

import math

from cereal.services import SERVICES
from common import clock
from common.swaglog import cloudlog
from common.transformations.camera_file import frame_camera
from selfdrive.car.car_identity import describe
from selfdrive.ui.overlay import ROAD_CAMERA, build_overlay

SUBSCRIBES = ("modelV2", "liveCalibration", "carState", "selfdriveState", "longitudinalPlan", "deviceState",
            "roadCameraState", "carParams", "liveTorqueParameters")
MS_TO_KPH = 3.6
MIN_STALE_S = 0.5   # a 100 Hz service is alive for 10 periods (0.1 s); a screen should not flicker on a hiccup


def _num(v, digits: int = 1) -> float | None:
    v = float(v)
    return round(v, digits) if math.isfinite(v) else None


def fresh(sm, s: str, now: float) -> bool:
    """Shown at all: seen, and its last message is at most 10 periods (and at least MIN_STALE_S) old."""
    f = SERVICES[s].frequency
    return bool(sm.seen[s]) and (f <= 0 or now - sm.recv_time[s] < max(10.0 / f, MIN_STALE_S))


def _selfdrive(sd) -> dict:
    return {"state": str(sd.state), "enabled": bool(sd.enabled), "active": bool(sd.active),
            "alertText1": str(sd.alertText1), "alertText2": str(sd.alertText2),
            "alertStatus": str(sd.alertStatus), "alertSize": str(sd.alertSize)}


def _device(ds) -> dict:
    temps = [t for t in (*ds.cpuTempC, ds.maxTempC) if math.isfinite(t) and t > 0]
    return {"cpuTempC": round(max(temps), 1) if temps else None, "freeSpacePercent": _num(ds.freeSpacePercent),
            "thermalStatus": str(ds.thermalStatus)}


def steering_text(lt) -> str:
    """torqued's estimate in words: the car's lateral acceleration per unit torque, against carParams'."""
    ratio = lt.latAccelFactor / lt.carLatAccelFactor if lt.carLatAccelFactor > 0 else math.nan
    src = {"carParams": "as carParams says", "stored": "stored from an earlier drive",
           "learning": f"learning, {lt.confidence:.0%} sure", "learned": "learnt"}.get(str(lt.source), str(lt.source))
    return f"steering: {lt.latAccelFactor:.2f} m/s² per torque (x{ratio:.2f} carParams), {src}"


def _overlay(sm) -> dict | None:
    cal = sm["liveCalibration"] if fresh(sm, "liveCalibration", clock.monotonic()) else None
    rpy = list(cal.rpyCalib) if cal is not None else (0.0, 0.0, 0.0)
    height = cal.height[0] if cal is not None and len(cal.height) else None
    # the camera that took the frames shown: the lines are drawn with its intrinsics and lens
    base = frame_camera(sm["roadCameraState"]) if sm.seen["roadCameraState"] else ROAD_CAMERA
    try:
        return build_overlay(sm["modelV2"], rpy, height, base)
    except (ValueError, TypeError, IndexError) as e:  # a model message we cannot draw: no overlay, never a crash
        cloudlog.warning("uid: modelV2 not drawable", extra={"error": str(e)})
        return None


def model_lag_ms(model, frame_eof_ns: int) -> float | None:
    """How far the drawn model output is behind the shown picture (ms of camera time); None if unknown."""
    if model.timestampEof == 0 or frame_eof_ns == 0:
        return None
    return round((frame_eof_ns - model.timestampEof) / 1e6, 1)


def build_state(sm, frame_eof_ns: int = 0, frames_dropped: int = 0) -> dict:
    """The page's state from a SubMaster over SUBSCRIBES; `frame_eof_ns`: the newest frame sent to pages."""
    now = clock.monotonic()  # SubMaster's clock (the world's in lockstep)
    alive = {s: fresh(sm, s, now) for s in SUBSCRIBES}
    model = sm["modelV2"]
    st: dict = {"type": "state", "alive": alive, "overlay": _overlay(sm) if alive["modelV2"] else None}
    st["car"] = {"speedKph": _num(sm["carState"].vEgo * MS_TO_KPH)} if alive["carState"] else None
    lp = sm["longitudinalPlan"]
    st["plan"] = {"setSpeedKph": _num(lp.vCruise * MS_TO_KPH), "fcw": bool(lp.fcw)} if alive["longitudinalPlan"] \
        else None
    st["selfdrive"] = _selfdrive(sm["selfdriveState"]) if alive["selfdriveState"] else None
    st["device"] = _device(sm["deviceState"]) if alive["deviceState"] else None
    # which car, and how card knows (firmware, CAN fingerprint, --car) or that it does not: every start
    st["carIdentity"] = describe(sm["carParams"]) if sm.seen["carParams"] else None
    st["steering"] = steering_text(sm["liveTorqueParameters"]) if alive["liveTorqueParameters"] else None
    st["status"] = {"modelLagMs": model_lag_ms(model, frame_eof_ns) if alive["modelV2"] else None,
                    "modelFrameDropPerc": _num(model.frameDropPerc) if alive["modelV2"] else None,
                    "uidFramesDropped": int(frames_dropped)}
    return st
