"""selfdrived: events → engagement state → the alert the driver sees. 100 Hz, paced by carState.

Each cycle collects this cycle's events (the driver's pedals and buttons, the car's faults, the health
of every input, the device), steps the state machine (state.py) and publishes selfdriveState (state,
enabled/active, the one alert to show) and onroadEvents (every event with its types: on change and
once a second).

Health: an input that is not alive, not valid or off frequency is `commIssue`; so is a fast input whose
last message is older than STALE_PERIODS of its period (SubMaster's `alive` allows 10, too slow to
hand control back within half a second when modeld dies). A stale carState is worse: nothing we see
of the car is current, so it is `carStateStale`, an immediate disable. A relay malfunction the CAN adapter's
safety layer latched (adapterState) is an immediate disable too, and no entry: nothing we send reaches the car.

Storage is never a reason to disengage: a full disk (loggerState, deviceState.storage, or our own params
writes, which go through a background thread) is one permanent alert, `storageFault`, and the drive goes on.
Persisted values the manager found corrupt at start (ParamsReset) are named until the first engagement.
"""

import math

from cereal import messaging
from cereal.services import SERVICES
from common import clock
from common.params import Params
from common.realtime import DT_CTRL, PRIO_CTRL_LOW, Ratekeeper, set_realtime_priority
from common.swaglog import cloudlog_bind
from selfdrive.car.car_params import wait_car_params
from selfdrive.selfdrived.alertmanager import AlertManager
from selfdrive.selfdrived.events import ET, Events
from selfdrive.selfdrived.state import StateMachine

PERSONALITIES = ("aggressive", "standard", "relaxed")  # LongitudinalPersonality param values 0, 1, 2
SUBSCRIBES = ("carState", "controlsState", "longitudinalPlan", "modelV2", "liveCalibration", "deviceState",
            "managerState", "loggerState", "adapterState")
PUBLISHES = ("selfdriveState", "onroadEvents")
FAST_INPUTS = ("controlsState", "longitudinalPlan", "modelV2")        # alive, valid, on frequency, fresh
SLOW_INPUTS = ("liveCalibration", "deviceState", "managerState")      # alive and valid
# without loggerd the car still drives; canbridged's health shows in carState (canError, carStateStale) and in
# managerState: neither is a health input of their own
CHECKED = tuple(s for s in SUBSCRIBES if s not in ("loggerState", "adapterState"))
STALE_PERIODS = 5
POLL_S = 2 * DT_CTRL          # carState this late: a cycle anyway (what is missing shows in the events)
PARAMS_EVERY = 100            # cycles between reads of the user's settings
EVENTS_EVERY = 100            # onroadEvents at least this often (1 Hz), and on every change
# a storage fault stays raised this long after its last sighting: loggerd's retry (every 5 s) reports writing
# until its first flush fails again, and hardwared probes every 5 s, so a full disk would make the alert flicker
STORAGE_HOLD_S = 10.0
PARAMS_RESET_FIRST_S = 10.0   # corrupt saved data is named above every other notice this long after start
BUS_AGREE_CARSTATES = 300    # carStates (3 s) without a single canValid: the bus is not the car carParams names
MAX_FRAME_DROP_PERC = 20.0
MIN_FREE_SPACE_PERC = 7.0
DRIVE_GEARS = frozenset({"drive", "sport", "low", "eco", "manumatic", "brake"})


class SelfdriveD:
    def __init__(self, CP, params: Params | None = None, sm: messaging.SubMaster | None = None,
                 pm: messaging.PubMaster | None = None):
        self.CP = CP
        self.params = params or Params()
        self.sm = sm or messaging.SubMaster(SUBSCRIBES, poll="carState")
        self.pm = pm or messaging.PubMaster(list(PUBLISHES))
        self.events = Events()
        self.state = StateMachine()
        self.alerts = AlertManager()
        self.CS_prev = self.sm["carState"]
        self.frame = 0
        self.personality = "standard"
        self.experimental = False
        self.last_event_names: list[str] = []
        self.was_enabled = False
        self.car_states = 0          # carStates seen, until the bus agrees with carParams
        self.bus_agreed = False      # carState has said canValid at least once
        self.params_reset = self.params.get("ParamsReset") or {}
        self.ever_enabled = False
        self.storage_fault: tuple[str, str] | None = None  # (what, why) of the newest storage fault seen
        self.storage_fault_until = -math.inf

    def identity_events(self, CS) -> bool:
        """Whether the car is one we can talk to: not recognised (dashcam), or a bus that never carried what the
        platform needs (a wrong --car, or the wrong car for what was identified). True when it is."""
        if self.CP.dashcamOnly:
            unknown = self.CP.carFingerprint == "MOCK"
            self.events.add("carUnrecognized" if unknown else "carDashcamOnly", car=self.CP.carFingerprint)
            return False
        if not self.bus_agreed:
            self.bus_agreed = bool(CS.canValid)
            self.car_states += 1
            if not self.bus_agreed and self.car_states > BUS_AGREE_CARSTATES:
                forced = str(self.CP.fingerprintSource) == "fixed"
                self.events.add("carMismatch", car=("--car " if forced else "") + self.CP.carFingerprint)
                return False
        return True

    def car_events(self, CS) -> None:
        """The driver and the car, from this carState and the previous one."""
        ev, CP, prev = self.events, self.CP, self.CS_prev
        if CP.pcmCruise:
            if CS.cruiseState.enabled and not prev.cruiseState.enabled:
                ev.add("cruiseEngaged")
            elif not CS.cruiseState.enabled:
                ev.add("cruiseDisengaged")
        elif CS.buttonEnable:
            ev.add("cruiseEngaged")
        if any(b.type == "cancel" and b.pressed for b in CS.buttonEvents):
            ev.add("buttonCancel")
        # at a stop, holding the brake is how one waits: only a new press disengages there
        if CS.brakePressed and (not prev.brakePressed or not CS.standstill):
            ev.add("brakePressed")
        if CS.brakePressed and CS.standstill:
            ev.add("preEnableStandstill")
        table = ((CS.gasPressed, "gasPressedOverride"), (CS.steeringPressed, "steerOverride"),
                 (not CS.canValid or CS.canTimeout, "canError"), (CS.vEgo < CP.minEnableSpeed, "speedTooLow"),
                 (CS.steerFaultTemporary, "steerTempUnavailable"), (CS.steerFaultPermanent, "steerUnavailable"),
                 (CS.doorOpen, "doorOpen"), (CS.seatbeltUnlatched, "seatbeltNotLatched"),
                 (str(CS.gearShifter) not in DRIVE_GEARS, "wrongGear"))
        for cond, name in table:
            if cond:
                ev.add(name)

    def health_events(self, now: float) -> None:
        """Every input's health, the model's timing, calibration, the device and the processes."""
        sm, ev = self.sm, self.events
        if not sm.alive["carState"]:
            ev.add("carStateStale")
        bad = [s for s in FAST_INPUTS if not sm.all_checks([s])
               or now - sm.recv_time[s] > STALE_PERIODS / SERVICES[s].frequency]
        bad += [s for s in SLOW_INPUTS if not (sm.alive[s] and sm.valid[s])]
        if bad:
            ev.add("commIssue", services=", ".join(bad))
        if sm.seen["modelV2"] and sm["modelV2"].frameDropPerc > MAX_FRAME_DROP_PERC:
            ev.add("modeldLagging")
        if sm.seen["managerState"]:
            down = [p.name for p in sm["managerState"].processes if p.shouldBeRunning and not p.running]
            if down:
                ev.add("processNotRunning", processes=", ".join(down))
        cal = sm["liveCalibration"]
        if str(cal.calStatus) in ("uncalibrated", "recalibrating"):
            ev.add("calibrationIncomplete", percent=cal.calPerc)
        elif str(cal.calStatus) == "invalid":
            ev.add("calibrationInvalid")
        if sm.seen["adapterState"] and sm["adapterState"].relayMalfunction:
            ev.add("relayMalfunction")
        if sm["controlsState"].lateralSaturated:
            ev.add("steerSaturated")
        if sm["longitudinalPlan"].fcw:
            ev.add("fcw")
        ds = sm["deviceState"]
        if str(ds.thermalStatus) in ("red", "danger"):
            ev.add("overheat")
        self.storage_events(now)

    def storage_events(self, now: float) -> None:
        """One alert for storage, the worst of: loggerd stopped, a store not writable, our own params writes
        failing (held STORAGE_HOLD_S after it was last seen); else low free space. None of it disengages (driving
        needs no disk)."""
        sm = self.sm
        fault = None
        if sm.seen["loggerState"] and not sm["loggerState"].writing:
            fault = ("Logging Stopped", sm["loggerState"].error)
        elif bad := [st for st in sm["deviceState"].storage if not st.writable] if sm.seen["deviceState"] else []:
            fault = ("Logging Stopped" if bad[0].name == "routes" else "Settings Not Saved", bad[0].error)
        elif self.params.failing:
            fault = ("Settings Not Saved", next(iter(self.params.failing.values())))
        if fault is not None:
            self.storage_fault, self.storage_fault_until = fault, now + STORAGE_HOLD_S
        elif now < self.storage_fault_until:
            fault = self.storage_fault
        if fault is not None:
            what, why = fault
            self.events.add("storageFault", what=what, why="Disk Full" if "No space" in why else why or "Write Failed")
        elif sm.seen["deviceState"] and sm["deviceState"].freeSpacePercent < MIN_FREE_SPACE_PERC:
            self.events.add("lowDiskSpace", percent=int(sm["deviceState"].freeSpacePercent))
        if self.params_reset and not self.ever_enabled:
            first = self.frame * DT_CTRL < PARAMS_RESET_FIRST_S
            self.events.add("paramsReset" if first else "paramsResetStill", keys=", ".join(sorted(self.params_reset)))

    def step(self, now: float) -> None:
        CS = self.sm["carState"]
        self.events.clear()
        if self.sm.updated["carState"] and self.identity_events(CS):
            self.car_events(CS)
        self.health_events(now)
        self.state.update(self.events)
        self.alerts.add_many(self.frame, self.events.create_alerts(self.state.alert_types))
        if self.sm.updated["carState"]:
            self.CS_prev = CS
        if self.frame % PARAMS_EVERY == 0:
            self.personality = personality_name(self.params.get("LongitudinalPersonality"))
            self.experimental = bool(self.params.get("ExperimentalMode"))
        if self.state.enabled != self.was_enabled:
            self.params.put_nonblocking("IsEngaged", self.state.enabled)  # never a disk wait in the 100 Hz loop
            self.was_enabled = self.state.enabled
            self.ever_enabled |= self.state.enabled

    def publish(self) -> None:
        # our stricter freshness rule (commIssue) counts too: an input late enough to disengage us is not valid
        valid = self.sm.all_checks(list(CHECKED)) and "commIssue" not in self.events
        msg = messaging.new_message("selfdriveState", valid=valid)
        ss = msg.selfdriveState
        ss.state = self.state.state.value
        ss.enabled, ss.active = self.state.enabled, self.state.active
        ss.engageable = not self.events.contains(ET.NO_ENTRY)
        ss.experimentalMode = self.experimental
        ss.personality = self.personality
        ss.carStateMonoTime = self.sm.logMonoTime["carState"]
        current = self.alerts.process(self.frame)
        if current is not None:
            key, alert = current
            ss.alertType, ss.alertText1, ss.alertText2 = key, alert.text1, alert.text2
            ss.alertStatus, ss.alertSize = alert.status, alert.size
            ss.alertSound, ss.alertVisual = alert.audible, alert.visual
        self.pm.send("selfdriveState", msg)
        if self.events.names != self.last_event_names or self.frame % EVENTS_EVERY == 0:
            ev = messaging.new_message("onroadEvents", len(self.events), valid=valid)
            self.events.to_msg(ev.onroadEvents)
            self.pm.send("onroadEvents", ev)
            self.last_event_names = list(self.events.names)
        self.frame += 1

    def run(self) -> None:
        rk = Ratekeeper(1.0 / DT_CTRL, print_delay_threshold=None)
        poll_ms = int(POLL_S * 1000)  # on the process's clock (common.clock: the world's in lockstep)
        while True:
            self.sm.update(poll_ms)
            self.step(clock.monotonic())
            self.publish()
            rk.monitor_time()


def personality_name(value: int | None) -> str:
    """The LongitudinalPersonality param's value (0, 1, 2) as selfdriveState names it; anything else is standard."""
    return PERSONALITIES[value] if isinstance(value, int) and 0 <= value < len(PERSONALITIES) else "standard"


def main() -> None:
    cloudlog_bind(name="selfdrived")
    set_realtime_priority(PRIO_CTRL_LOW)
    SelfdriveD(wait_car_params()).run()


if __name__ == "__main__":
    main()
