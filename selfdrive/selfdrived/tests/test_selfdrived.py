"""selfdrived's cycle on a synthetic timeline (SubMaster.update_msgs): events from each input → state → alert."""

import pytest

from cereal import messaging
from common.params import Params
from selfdrive.controls.tests.synth import car_params
from selfdrive.selfdrived.selfdrived import SUBSCRIBES, SelfdriveD
from selfdrive.selfdrived.tests.fake_inputs import FakePM, Feeder


class Harness:
    def __init__(self, **cp):
        self.feeder = Feeder(SUBSCRIBES)
        self.sm = messaging.SubMaster(SUBSCRIBES, poll="carState")
        self.d = SelfdriveD(car_params(**cp), sm=self.sm, pm=FakePM())
        self.cruise = False
        self.car: dict = {}

    def cycle(self, n: int = 1):
        for _ in range(n):
            def edit(msg):
                msg.carState.cruiseState.enabled = self.cruise
                for k, v in self.car.items():
                    setattr(msg.carState, k, v)
            self.feeder.edit["carState"] = edit
            msgs = self.feeder.step()
            self.sm.update_msgs(self.feeder.t, msgs)
            self.d.step(self.feeder.t)
            self.d.publish()
        return self.d.pm.last("selfdriveState")

    def engage(self):
        self.cycle(150)  # every rate check has data
        self.cruise = True
        return self.cycle()

    def edit(self, service: str, fn) -> None:
        self.feeder.edit[service] = fn


@pytest.fixture
def h():
    return Harness()


def set_fields(**fields):
    def edit(msg):
        struct = getattr(msg, msg.which())
        for k, v in fields.items():
            setattr(struct, k, v)
    return edit


class TestEngage:
    def test_engages_on_cruise_and_publishes_state(self, h):
        m = h.engage()
        s = m.selfdriveState
        assert s.enabled and s.active and s.state == "enabled" and m.valid
        assert s.alertType == "cruiseEngaged/enable"
        ev = h.d.pm.last("onroadEvents").onroadEvents
        assert [e.name for e in ev] == ["cruiseEngaged"] and ev[0].enable
        h.cycle()
        assert len(h.d.pm.last("onroadEvents").onroadEvents) == 0  # sent on change: the edge is gone
        assert h.d.params.wait_written(10)
        assert Params().get("IsEngaged") is True

    def test_car_cruise_off_disengages(self, h):
        h.engage()
        h.cruise = False
        assert h.cycle().selfdriveState.alertType == "cruiseDisengaged/userDisable"
        assert h.d.params.wait_written(10)
        assert Params().get("IsEngaged") is False

    def test_gas_is_an_override_not_a_disengagement(self, h):
        h.engage()
        h.car = {"gasPressed": True}
        assert h.cycle().selfdriveState.state == "overriding"
        h.car = {}
        assert h.cycle().selfdriveState.state == "enabled"

    def test_brake_held_at_standstill_pre_enables(self, h):
        h.car = {"brakePressed": True, "standstill": True, "vEgo": 0.0}
        h.cycle(150)
        h.cruise = True
        s = h.cycle().selfdriveState
        assert s.state == "preEnabled" and s.enabled and not s.active
        h.car = {"standstill": True, "vEgo": 0.0}
        assert h.cycle().selfdriveState.state == "enabled"

    def test_personality_comes_from_params(self, h):
        Params().put("LongitudinalPersonality", 2)
        h.d.frame = 0
        assert h.cycle().selfdriveState.personality == "relaxed"


class TestNoEntry:
    @pytest.mark.parametrize("service, fields, event, text", [
        ("liveCalibration", {"calStatus": "uncalibrated", "calPerc": 40}, "calibrationIncomplete",
         "Calibration in Progress"),
        ("liveCalibration", {"calStatus": "invalid"}, "calibrationInvalid", "Calibration Invalid"),
        ("deviceState", {"thermalStatus": "red"}, "overheat", "System Overheated"),
        ("modelV2", {"frameDropPerc": 50.0}, "modeldLagging", "Driving Model Lagging"),
        ("carState", {"canValid": False}, "canError", "CAN Error: Check Connections"),
        ("carState", {"doorOpen": True}, "doorOpen", "Door Open"),
        ("carState", {"gearShifter": "reverse"}, "wrongGear", "Gear not D"),
        ("adapterState", {"relayMalfunction": True}, "relayMalfunction", "Harness Relay Malfunction"),
    ])
    def test_refuses_to_engage_and_says_why(self, h, service, fields, event, text):
        if service == "carState":
            h.car = fields
        else:
            h.edit(service, set_fields(**fields))
        h.cycle(150)
        assert not h.d.pm.last("selfdriveState").selfdriveState.engageable
        h.cruise = True
        s = h.cycle().selfdriveState
        assert not s.enabled and s.alertType == f"{event}/noEntry"
        assert s.alertText1 == "roadpilot Unavailable" and s.alertText2.startswith(text)
        names = [e.name for e in h.d.pm.last("onroadEvents").onroadEvents]
        assert event in names

    def test_process_not_running_names_it(self, h):
        def edit(msg):
            msg.managerState.processes[3].running = False  # modeld
        h.edit("managerState", edit)
        h.cycle(150)
        h.cruise = True
        s = h.cycle().selfdriveState
        assert s.alertType == "processNotRunning/noEntry" and s.alertText2 == "Process Not Running: modeld"

    def test_below_min_enable_speed(self):
        h = Harness(minEnableSpeed=10.0)
        h.car = {"vEgo": 5.0}
        h.cycle(150)
        h.cruise = True
        assert h.cycle().selfdriveState.alertType == "speedTooLow/noEntry"


class TestWhichCar:
    """The car is one we can talk to, or the driver is told why not (and nothing engages)."""

    @pytest.mark.parametrize("fingerprint, event, text1", [("MOCK", "carUnrecognized", "Car Not Recognised"),
                                                         ("CADILLAC_ESCALADE", "carDashcamOnly", "Dashcam Mode")])
    def test_dashcam_mode_is_said_not_a_can_error(self, fingerprint, event, text1):
        h = Harness(carFingerprint=fingerprint, dashcamOnly=True)
        h.car = {"canValid": False, "vEgo": 0.0}
        s = h.cycle(150).selfdriveState
        assert s.alertType == f"{event}/permanent" and s.alertText1 == text1
        names = [e.name for e in h.d.pm.last("onroadEvents").onroadEvents]
        assert event in names and "canError" not in names  # no car port reads the bus: not a CAN fault
        h.cruise = True  # what the car says of its cruise is not read: there is no car port
        s = h.cycle(10).selfdriveState
        assert not s.enabled and s.alertType == f"{event}/permanent"

    @pytest.mark.parametrize("source, text", [("fixed", "Car Does Not Match --car SYNTH_SEDAN"),
                                              ("fw", "Car Does Not Match SYNTH_SEDAN")])
    def test_a_bus_that_never_agrees_is_a_mismatch(self, source, text):
        h = Harness(fingerprintSource=source)
        h.car = {"canValid": False}
        s = h.cycle(300).selfdriveState
        assert s.alertType == "canError/noEntry" or s.alertType == ""  # not yet: a car's bus takes a moment
        s = h.cycle(5).selfdriveState
        assert s.alertType == "carMismatch/permanent" and s.alertText1 == text
        h.cruise = True  # a bus that is not this car's: its cruise state is not believed either
        s = h.cycle(10).selfdriveState
        assert not s.enabled and s.alertType == "carMismatch/permanent"

    def test_a_bus_that_agreed_once_is_a_can_error_later(self, h):
        h.cycle(10)
        h.car = {"canValid": False}
        h.cycle(400)
        names = [e.name for e in h.d.pm.last("onroadEvents").onroadEvents]
        assert "canError" in names and "carMismatch" not in names


class TestWhileEngaged:
    def test_overheat_soft_disables_then_disengages(self, h):
        h.engage()
        h.edit("deviceState", set_fields(thermalStatus="danger"))
        for _ in range(60):
            s = h.cycle().selfdriveState
            if s.state == "softDisabling":
                break
        assert s.alertType == "overheat/softDisable" and s.active
        for _ in range(310):
            s = h.cycle().selfdriveState
        assert s.state == "disabled"

    def test_input_stops_is_comm_issue(self, h):
        h.engage()
        h.feeder.stopped.add("longitudinalPlan")
        t0 = h.feeder.t
        for _ in range(30):
            m = h.cycle()
            if m.selfdriveState.state == "softDisabling":
                break
        assert h.feeder.t - t0 <= 0.3 and m.selfdriveState.alertType == "commIssue/softDisable" and not m.valid
        assert "longitudinalPlan" in h.d.events.context["commIssue"]["services"]

    def test_invalid_input_is_comm_issue(self, h):
        h.engage()
        h.edit("controlsState", lambda msg: setattr(msg, "valid", False))
        assert h.cycle().selfdriveState.alertType == "commIssue/softDisable"

    def test_fcw_and_steer_saturated_are_warnings(self, h):
        h.engage()
        h.edit("longitudinalPlan", set_fields(fcw=True))
        h.edit("controlsState", set_fields(lateralSaturated=True))
        h.cycle(10)
        s = h.cycle().selfdriveState
        assert s.state == "enabled" and s.alertType == "fcw/warning" and s.alertText1 == "BRAKE!"
        assert {"fcw", "steerSaturated"} <= set(h.d.events.names)

    def test_stale_carstate_is_immediate_disable(self, h):
        h.engage()
        h.feeder.stopped.add("carState")
        t0 = h.feeder.t
        for _ in range(30):
            s = h.cycle().selfdriveState
            if s.state == "disabled":
                break
        assert s.alertType == "carStateStale/immediateDisable" and h.feeder.t - t0 <= 0.12


    def test_relay_malfunction_disengages_at_once_and_stays_named(self, h):
        # the adapter refuses every frame from now on: the cruise would only drop again and again
        assert h.engage().selfdriveState.enabled
        h.edit("adapterState", set_fields(relayMalfunction=True))
        for _ in range(60):
            s = h.cycle().selfdriveState
            if not s.enabled:
                break
        assert s.alertType == "relayMalfunction/immediateDisable" and s.alertText2 == "Harness Relay Malfunction"
        h.cruise = False
        h.cycle(450)  # the take-control alert lasts 4 s
        h.cruise = True
        s = h.cycle().selfdriveState
        assert not s.enabled and s.alertType == "relayMalfunction/noEntry"
        h.cruise = False
        s = h.cycle(300).selfdriveState
        assert s.alertType == "relayMalfunction/permanent" and "Check the Harness" in s.alertText2


class TestStorage:
    """A full disk is one permanent alert and never a disengagement; corrupt saved data is named."""

    def test_logging_stopped_is_one_alert_and_the_drive_goes_on(self, h):
        assert h.engage().selfdriveState.enabled
        h.edit("loggerState", set_fields(writing=False, error="No space left on device"))
        s = h.cycle(300).selfdriveState
        assert s.enabled and s.state == "enabled"
        assert s.alertType == "storageFault/permanent"
        assert (s.alertText1, s.alertText2) == ("Logging Stopped: Disk Full", "Driving Continues; Free Up Space")
        # loggerd's retry on a still-full disk says "writing" until its first flush fails: the alert holds
        h.edit("loggerState", set_fields(writing=True, error=""))
        assert h.cycle(300).selfdriveState.alertType == "storageFault/permanent"
        h.edit("loggerState", set_fields(writing=False, error="No space left on device"))
        h.cycle(100)
        h.edit("loggerState", set_fields(writing=True, error=""))
        assert h.cycle(900).selfdriveState.alertType == "storageFault/permanent"  # 10 s from its last sighting
        assert h.cycle(200).selfdriveState.alertType == ""

    def test_an_unwritable_params_store_is_named(self, h):
        def full_params(msg):
            msg.deviceState.storage[0].writable = False
            msg.deviceState.storage[0].error = "Read-only file system"
        h.edit("deviceState", full_params)
        s = h.engage().selfdriveState
        assert s.enabled
        s = h.cycle(300).selfdriveState  # once the engagement's own alert is gone
        assert s.alertText1 == "Settings Not Saved: Read-only file system"

    def test_our_own_failed_writes_alert_and_do_not_stop_the_loop(self, h, monkeypatch):
        import errno

        def put(key, value):
            raise OSError(errno.ENOSPC, "No space left on device")
        monkeypatch.setattr(h.d.params, "put", put)
        assert h.engage().selfdriveState.enabled  # IsEngaged cannot be stored: engaged all the same
        assert h.d.params.wait_written(10)
        s = h.cycle(300).selfdriveState
        assert s.enabled and s.alertText1 == "Settings Not Saved: Disk Full"

    def test_low_space_warns_but_does_not_refuse_engagement(self, h):
        h.edit("deviceState", set_fields(freeSpacePercent=2.0))
        s = h.engage().selfdriveState
        assert s.enabled
        assert h.cycle(300).selfdriveState.alertText1 == "Low on Storage: 2% Free"

    def test_corrupt_saved_data_is_named_until_the_first_engagement(self):
        # a reset calibration starts over: its progress must not hide why, so the notice comes first for 10 s,
        # then calibration's progress, then the notice again once nothing else is up, until the first engagement
        Params().put("ParamsReset", {"CalibrationParams": "valid_blocks is not a count: inf"})
        h = Harness()
        h.edit("liveCalibration", set_fields(calStatus="uncalibrated", calPerc=40))
        s = h.cycle(150).selfdriveState
        assert s.alertType == "paramsReset/permanent" and s.alertText2 == "Reset to Default: CalibrationParams"
        assert h.cycle(1000).selfdriveState.alertType == "calibrationIncomplete/permanent"
        h.edit("liveCalibration", set_fields(calStatus="calibrated", calPerc=100))
        s = h.cycle(50).selfdriveState
        assert s.alertType == "paramsResetStill/permanent" and s.alertText1 == "Saved Data Was Corrupt"
        assert h.engage().selfdriveState.enabled
        assert h.cycle(100).selfdriveState.alertType == ""
