"""The state message: what the page shows for live, missing and stale services."""

import json
import math
import time

from cereal import messaging
from selfdrive.ui.tests.stack import Scene, fill_model
from selfdrive.ui.ui_state import SUBSCRIBES, build_state, model_lag_ms


def feed(sm: messaging.SubMaster, at: float, **builders) -> None:
    msgs = []
    for service, fill in builders.items():
        msg = messaging.new_message(service)
        fill(getattr(msg, service))
        msgs.append(messaging.log_from_bytes(msg.to_bytes()))
    sm.update_msgs(at, msgs)


def selfdrive(sd) -> None:
    sd.state, sd.enabled, sd.active = "softDisabling", True, True
    sd.alertText1, sd.alertText2, sd.alertStatus, sd.alertSize = "TAKE CONTROL IMMEDIATELY", "Camera Error", \
        "critical", "full"


def device(ds) -> None:
    ds.cpuTempC, ds.maxTempC, ds.freeSpacePercent, ds.thermalStatus = [48.0, math.nan, 61.5], 0.0, 42.25, "yellow"


class TestBuildState:
    def setup_method(self):
        self.sm = messaging.SubMaster(SUBSCRIBES)

    def teardown_method(self):
        self.sm.close()

    def test_nothing_running_shows_nothing(self):
        st = build_state(self.sm)
        assert st["alive"] == dict.fromkeys(SUBSCRIBES, False)
        assert all(st[k] is None for k in ("overlay", "car", "plan", "selfdrive", "device", "carIdentity", "steering"))
        assert st["status"] == {"modelLagMs": None, "modelFrameDropPerc": None, "uidFramesDropped": 0}
        json.dumps(st, allow_nan=False)

    def test_live_services_in_display_units(self):
        now = time.monotonic()
        feed(self.sm, now, selfdriveState=selfdrive, deviceState=device,
             carState=lambda cs: setattr(cs, "vEgo", 25.0),
             longitudinalPlan=lambda lp: (setattr(lp, "vCruise", 30.0), setattr(lp, "fcw", True)),
             modelV2=lambda md: fill_model(md, Scene(), 3))
        st = build_state(self.sm, frame_eof_ns=self.sm["modelV2"].timestampEof + 40_000_000, frames_dropped=4)
        json.dumps(st, allow_nan=False)
        assert st["selfdrive"] == {"state": "softDisabling", "enabled": True, "active": True,
                                   "alertText1": "TAKE CONTROL IMMEDIATELY", "alertText2": "Camera Error",
                                   "alertStatus": "critical", "alertSize": "full"}
        assert st["car"] == {"speedKph": 90.0} and st["plan"] == {"setSpeedKph": 108.0, "fcw": True}
        assert st["device"] == {"cpuTempC": 61.5, "freeSpacePercent": 42.2, "thermalStatus": "yellow"}
        assert st["status"] == {"modelLagMs": 40.0, "modelFrameDropPerc": 0.0, "uidFramesDropped": 4}
        assert st["overlay"]["path"] and st["overlay"]["lead"]["dist"] == 35.0
        assert st["alive"]["modelV2"] and not st["alive"]["roadCameraState"]

    def test_the_car_and_how_it_was_identified_are_shown(self):
        def identified(cp):
            cp.carFingerprint, cp.fingerprintSource, cp.carVin = "LEXUS_CTH", "fw", "JTHSMCAR0JS000001"
            fw = cp.init("carFw", 2)
            fw[0].address, fw[1].address, fw[1].subAddress = 0x7E0, 0x750, 0x6D
        feed(self.sm, time.monotonic(), carParams=identified)
        assert build_state(self.sm)["carIdentity"] == \
            "car LEXUS_CTH, identified by firmware query (2 ECUs answered, VIN JTHSMCAR0JS000001)"
        feed(self.sm, time.monotonic(), carParams=lambda cp: (setattr(cp, "carFingerprint", "MOCK"),
                                                               setattr(cp, "dashcamOnly", True)))
        assert build_state(self.sm)["carIdentity"] == "car not recognised: dashcam mode, nothing is sent to the car"

    def test_the_learnt_steering_response_is_shown_against_carparams(self):
        def learning(lt):
            lt.latAccelFactor, lt.carLatAccelFactor, lt.source, lt.confidence = 4.6, 2.3, "learning", 0.42
        feed(self.sm, time.monotonic(), liveTorqueParameters=learning)
        assert build_state(self.sm)["steering"] == \
            "steering: 4.60 m/s² per torque (x2.00 carParams), learning, 42% sure"

    def test_stale_services_are_dropped_not_shown_stale(self):
        t0 = time.monotonic() - 0.6   # 0.6 s ago: past 10 periods of selfdriveState, within deviceState's
        feed(self.sm, t0, selfdriveState=selfdrive, deviceState=device)
        st = build_state(self.sm)
        assert st["selfdrive"] is None and not st["alive"]["selfdriveState"]
        assert st["device"] is not None

    def test_model_lag_unknown_without_timestamps(self):
        md = messaging.new_message("modelV2").modelV2
        assert model_lag_ms(md, 123) is None
        md.timestampEof = 100_000_000
        assert model_lag_ms(md, 0) is None and model_lag_ms(md, 150_000_000) == 50.0
