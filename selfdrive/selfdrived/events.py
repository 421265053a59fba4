"""The one table of onroad events: each event's name → the alert it raises per event type.

An event is a fact about this cycle ("brake pressed", "modelV2 stale"); its event types say what the
state machine (state.py) may do about it (ET below), and its alerts say what the driver sees and hears
for each type. Alert texts may hold `{placeholders}`, filled from the context given when the event is
added (e.g. which process is not running). selfdriveState.alertType is "<eventName>/<eventType>".
"""

import enum
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any


class ET(enum.StrEnum):
    """Event types; the values are the OnroadEvent field names."""
    ENABLE = "enable"
    PRE_ENABLE = "preEnable"
    OVERRIDE_LATERAL = "overrideLateral"
    OVERRIDE_LONGITUDINAL = "overrideLongitudinal"
    NO_ENTRY = "noEntry"
    WARNING = "warning"
    USER_DISABLE = "userDisable"
    SOFT_DISABLE = "softDisable"
    IMMEDIATE_DISABLE = "immediateDisable"
    PERMANENT = "permanent"


class Priority(enum.IntEnum):
    LOWEST = 0
    LOWER = 1
    LOW = 2
    MID = 3
    HIGH = 4
    HIGHEST = 5


@dataclass(frozen=True)
class Alert:
    text1: str
    text2: str
    status: str                 # SelfdriveState.AlertStatus: normal, userPrompt, critical
    size: str                   # SelfdriveState.AlertSize: none, small, mid, full
    priority: Priority
    audible: str = "none"       # CarControl.HUDControl.AudibleAlert
    visual: str = "none"        # CarControl.HUDControl.VisualAlert
    duration: float = 0.2       # s the alert stays up after its event has cleared

    def format(self, ctx: Mapping[str, Any]) -> "Alert":
        if "{" not in self.text1 + self.text2:
            return self
        fmt = _Formatter()
        return replace(self, text1=fmt.vformat(self.text1, (), ctx), text2=fmt.vformat(self.text2, (), ctx))


class _Formatter(string.Formatter):
    def get_value(self, key, args, kwargs):
        return kwargs.get(key, "?") if isinstance(key, str) else super().get_value(key, args, kwargs)


def engage() -> Alert:
    return Alert("", "", "normal", "none", Priority.MID, audible="engage")


def disengage() -> Alert:
    return Alert("", "", "normal", "none", Priority.MID, audible="disengage")


def override() -> Alert:
    return Alert("", "", "normal", "none", Priority.LOWEST, duration=0.1)


def no_entry(text2: str) -> Alert:
    return Alert("roadpilot Unavailable", text2, "normal", "mid", Priority.LOW, audible="refuse", duration=3.0)


def soft_disable(text2: str) -> Alert:
    return Alert("TAKE CONTROL IMMEDIATELY", text2, "userPrompt", "full", Priority.MID,
                 audible="warningSoft", visual="steerRequired", duration=2.0)


def immediate_disable(text2: str) -> Alert:
    return Alert("TAKE CONTROL IMMEDIATELY", text2, "critical", "full", Priority.HIGHEST,
                 audible="warningImmediate", visual="steerRequired", duration=4.0)


def permanent(text1: str, text2: str = "") -> Alert:
    return Alert(text1, text2, "normal", "mid" if text2 else "small", Priority.LOWER)


def warning(text1: str, text2: str, priority: Priority = Priority.LOW, audible: str = "prompt",
            visual: str = "none", status: str = "userPrompt", duration: float = 1.0) -> Alert:
    return Alert(text1, text2, status, "mid", priority, audible, visual, duration)


EVENTS: dict[str, dict[ET, Alert]] = {
    # the driver's intent
    "cruiseEngaged": {ET.ENABLE: engage()},
    "cruiseDisengaged": {ET.USER_DISABLE: disengage()},
    "buttonCancel": {ET.USER_DISABLE: disengage(), ET.NO_ENTRY: no_entry("Cancel Pressed")},
    "brakePressed": {ET.USER_DISABLE: disengage(), ET.NO_ENTRY: no_entry("Brake Pressed")},
    "preEnableStandstill": {ET.PRE_ENABLE: Alert("Release Brake to Engage", "", "normal", "small", Priority.LOWEST,
                                                 duration=0.1)},
    "gasPressedOverride": {ET.OVERRIDE_LONGITUDINAL: override()},
    "steerOverride": {ET.OVERRIDE_LATERAL: override()},
    # the car: is it one we know, and does its bus say so
    "carUnrecognized": {ET.PERMANENT: permanent("Car Not Recognised", "Dashcam Mode: Nothing Is Sent to the Car"),
                        ET.NO_ENTRY: no_entry("Car Not Recognised: Dashcam Mode")},
    "carDashcamOnly": {ET.PERMANENT: permanent("Dashcam Mode", "{car} Is Not Supported for Control"),
                       ET.NO_ENTRY: no_entry("Dashcam Mode: {car} Is Not Supported")},
    "carMismatch": {ET.PERMANENT: permanent("Car Does Not Match {car}",
                                            "Its Bus Lacks the Platform's Messages: Nothing Is Sent"),
                    ET.NO_ENTRY: no_entry("Car Does Not Match {car}")},
    # the adapter saw the car's own copy of a message we send: the harness does not cut the stock ECU off
    "relayMalfunction": {ET.IMMEDIATE_DISABLE: immediate_disable("Harness Relay Malfunction"),
                         ET.NO_ENTRY: no_entry("Harness Relay Malfunction: Check the Harness"),
                         ET.PERMANENT: permanent("Harness Relay Malfunction",
                                                 "The Car's Own ECU Is on the Bus: Check the Harness")},
    "canError": {ET.IMMEDIATE_DISABLE: immediate_disable("CAN Error: Check Connections"),
                 ET.NO_ENTRY: no_entry("CAN Error: Check Connections")},
    "carStateStale": {ET.IMMEDIATE_DISABLE: immediate_disable("Car Interface Not Responding"),
                      ET.NO_ENTRY: no_entry("Car Interface Not Responding")},
    "speedTooLow": {ET.IMMEDIATE_DISABLE: immediate_disable("Speed Too Low"), ET.NO_ENTRY: no_entry("Speed Too Low")},
    "steerTempUnavailable": {ET.WARNING: warning("Take Control", "Steering Temporarily Unavailable",
                                                 visual="steerRequired"),
                             ET.NO_ENTRY: no_entry("Steering Temporarily Unavailable")},
    "steerUnavailable": {ET.IMMEDIATE_DISABLE: immediate_disable("Steering Fault: Restart the Car"),
                         ET.NO_ENTRY: no_entry("Steering Fault: Restart the Car"),
                         ET.PERMANENT: permanent("Steering Fault: Restart the Car")},
    "doorOpen": {ET.SOFT_DISABLE: soft_disable("Door Open"), ET.NO_ENTRY: no_entry("Door Open")},
    "seatbeltNotLatched": {ET.SOFT_DISABLE: soft_disable("Seatbelt Unlatched"),
                           ET.NO_ENTRY: no_entry("Seatbelt Unlatched")},
    "wrongGear": {ET.SOFT_DISABLE: soft_disable("Gear not D"), ET.NO_ENTRY: no_entry("Gear not D")},
    # the stack
    "commIssue": {ET.SOFT_DISABLE: soft_disable("Communication Issue Between Processes"),
                  ET.NO_ENTRY: no_entry("Communication Issue Between Processes: {services}")},
    "processNotRunning": {ET.NO_ENTRY: no_entry("Process Not Running: {processes}"),
                          ET.WARNING: warning("Process Not Running", "{processes}", priority=Priority.LOWER,
                                              audible="none", status="normal")},
    "modeldLagging": {ET.SOFT_DISABLE: soft_disable("Driving Model Lagging"),
                      ET.NO_ENTRY: no_entry("Driving Model Lagging")},
    "calibrationIncomplete": {ET.PERMANENT: permanent("Calibration in Progress: {percent}%", "Drive Above 15 km/h"),
                              ET.SOFT_DISABLE: soft_disable("Calibration Incomplete"),
                              ET.NO_ENTRY: no_entry("Calibration in Progress")},
    "calibrationInvalid": {ET.PERMANENT: permanent("Calibration Invalid", "Remount Camera and Recalibrate"),
                           ET.SOFT_DISABLE: soft_disable("Calibration Invalid: Remount Camera and Recalibrate"),
                           ET.NO_ENTRY: no_entry("Calibration Invalid: Remount Camera and Recalibrate")},
    "steerSaturated": {ET.WARNING: warning("Take Control", "Turn Exceeds Steering Limit", audible="promptRepeat",
                                           visual="steerRequired")},
    "fcw": {ET.WARNING: Alert("BRAKE!", "Risk of Collision", "critical", "full", Priority.HIGHEST,
                              audible="warningSoft", visual="fcw", duration=2.0)},
    # the device
    # storage never stops the assistant: a full disk costs the recording and saved settings, not the drive
    "lowDiskSpace": {ET.PERMANENT: permanent("Low on Storage: {percent}% Free", "Free Up Space to Keep Recording")},
    "storageFault": {ET.PERMANENT: permanent("{what}: {why}", "Driving Continues; Free Up Space")},
    # first above every other permanent alert (calibration's progress would hide it: a reset calibration is the
    # usual case), then beneath them until the first engagement
    "paramsReset": {ET.PERMANENT: replace(permanent("Saved Data Was Corrupt", "Reset to Default: {keys}"),
                                          priority=Priority.LOW)},
    "paramsResetStill": {ET.PERMANENT: replace(permanent("Saved Data Was Corrupt", "Reset to Default: {keys}"),
                                               priority=Priority.LOWEST)},
    "overheat": {ET.SOFT_DISABLE: soft_disable("System Overheated"), ET.NO_ENTRY: no_entry("System Overheated")},
}


class Events:
    """The events of one cycle, in the order they were added, with their alert contexts."""

    def __init__(self):
        self.names: list[str] = []
        self.context: dict[str, dict[str, Any]] = {}

    def add(self, name: str, **context: Any) -> None:
        if name not in EVENTS:
            raise KeyError(f"unknown event {name!r}: add it to EVENTS in selfdrive/selfdrived/events.py")
        if name not in self.context:
            self.names.append(name)
        self.context[name] = context

    def clear(self) -> None:
        self.names.clear()
        self.context.clear()

    def __contains__(self, name: str) -> bool:
        return name in self.context

    def __len__(self) -> int:
        return len(self.names)

    def contains(self, et: ET) -> bool:
        return any(et in EVENTS[n] for n in self.names)

    def create_alerts(self, types: Iterable[ET]) -> list[tuple[str, Alert]]:
        """("<name>/<type>", alert) for every current event that has an alert of one of `types`."""
        types = list(types)
        return [(f"{n}/{et}", EVENTS[n][et].format(self.context[n])) for n in self.names for et in types
                if et in EVENTS[n]]

    def to_msg(self, lst) -> None:
        """Fills an initialised List(OnroadEvent) builder of len(self) entries."""
        for dst, n in zip(lst, self.names, strict=True):
            dst.name = n
            for et in EVENTS[n]:
                setattr(dst, et.value, True)
