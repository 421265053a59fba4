import pytest

from cereal import car, log, messaging
from selfdrive.selfdrived.alertmanager import AlertManager
from selfdrive.selfdrived.events import ET, EVENTS, Alert, Events, Priority, no_entry

REQUIRED = ["cruiseEngaged", "cruiseDisengaged", "gasPressedOverride", "brakePressed", "steerOverride", "commIssue",
            "processNotRunning", "modeldLagging", "canError", "steerSaturated", "calibrationIncomplete",
            "speedTooLow", "fcw", "lowDiskSpace", "overheat", "carStateStale"]


def enum_names(enum_schema) -> set[str]:
    return set(enum_schema.schema.enumerants)


class TestTable:
    @pytest.mark.parametrize("name", REQUIRED)
    def test_required_events_exist(self, name):
        assert EVENTS[name]

    @pytest.mark.parametrize("name", sorted(EVENTS))
    def test_alerts_use_schema_values(self, name):
        status = enum_names(log.SelfdriveState.AlertStatus)
        size = enum_names(log.SelfdriveState.AlertSize)
        audible = enum_names(car.CarControl.HUDControl.AudibleAlert)
        visual = enum_names(car.CarControl.HUDControl.VisualAlert)
        for et, alert in EVENTS[name].items():
            assert isinstance(et, ET) and isinstance(alert, Alert)
            assert alert.status in status and alert.size in size
            assert alert.audible in audible and alert.visual in visual
            assert alert.duration > 0

    @pytest.mark.parametrize("name", sorted(EVENTS))
    def test_disabling_events_tell_the_driver(self, name):
        for et in (ET.SOFT_DISABLE, ET.IMMEDIATE_DISABLE, ET.NO_ENTRY):
            if et in EVENTS[name]:
                a = EVENTS[name][et]
                assert a.text1 and a.text2 and a.audible != "none"

    def test_engaging_events_do_not_also_block(self):
        # an event that enables must not veto itself
        for name, alerts in EVENTS.items():
            assert not (ET.ENABLE in alerts and ET.NO_ENTRY in alerts), name


class TestEvents:
    def test_unknown_event_is_an_error(self):
        with pytest.raises(KeyError, match="unknown event"):
            Events().add("notAnEvent")

    def test_contains_and_order(self):
        ev = Events()
        ev.add("fcw")
        ev.add("brakePressed")
        ev.add("fcw")
        assert ev.names == ["fcw", "brakePressed"] and len(ev) == 2 and "fcw" in ev
        assert ev.contains(ET.USER_DISABLE) and ev.contains(ET.WARNING) and not ev.contains(ET.SOFT_DISABLE)

    def test_alert_text_takes_context(self):
        ev = Events()
        ev.add("processNotRunning", processes="modeld, calibrationd")
        ev.add("calibrationIncomplete")  # context missing: placeholder shows '?', never raises
        alerts = dict(ev.create_alerts([ET.NO_ENTRY, ET.PERMANENT]))
        assert alerts["processNotRunning/noEntry"].text2 == "Process Not Running: modeld, calibrationd"
        assert alerts["calibrationIncomplete/permanent"].text1 == "Calibration in Progress: ?%"

    def test_to_msg_sets_type_flags(self):
        ev = Events()
        ev.add("commIssue", services="x")
        ev.add("steerOverride")
        msg = messaging.new_message("onroadEvents", len(ev))
        ev.to_msg(msg.onroadEvents)
        back = messaging.log_from_bytes(msg.to_bytes()).onroadEvents
        assert [e.name for e in back] == ["commIssue", "steerOverride"]
        assert back[0].softDisable and back[0].noEntry and not back[0].enable
        assert back[1].overrideLateral and not back[1].softDisable


class TestAlertManager:
    def test_highest_priority_wins_then_newest(self):
        am = AlertManager()
        low = no_entry("x")
        high = Alert("a", "b", "critical", "full", Priority.HIGHEST)
        am.add_many(0, [("low/noEntry", low)])
        am.add_many(1, [("high/warning", high), ("low/noEntry", low)])
        assert am.process(1)[0] == "high/warning"
        other = Alert("c", "d", "normal", "mid", Priority.HIGHEST)
        am.add_many(2, [("other/warning", other), ("high/warning", high)])
        assert am.process(2)[0] == "other/warning"

    def test_alert_outlives_its_event_by_its_duration(self):
        am = AlertManager(dt=0.01)
        a = Alert("a", "", "normal", "small", Priority.LOW, duration=0.5)
        am.add_many(10, [("x/warning", a)])
        assert am.process(59)[0] == "x/warning"
        assert am.process(60) is None

    def test_nothing_to_show(self):
        assert AlertManager().process(0) is None
