"""The engagement state machine: which state we are in, from the event types of this cycle.

  disabled      → enabled / preEnabled / overriding   on ENABLE without NO_ENTRY
  any engaged   → disabled                            on USER_DISABLE or IMMEDIATE_DISABLE (checked first)
  enabled       → softDisabling                       on SOFT_DISABLE (the driver gets SOFT_DISABLE_TIME to take over)
  enabled       → overriding                          on OVERRIDE_LATERAL/LONGITUDINAL
  softDisabling → enabled                             when the SOFT_DISABLE condition clears
  softDisabling → disabled                            when the timer runs out
  preEnabled    → enabled                             when PRE_ENABLE clears
  preEnabled    → disabled                            on SOFT_DISABLE (nothing is active yet to hand over)
  overriding    → softDisabling / enabled             on SOFT_DISABLE / when no override is left
`enabled` covers every state but disabled; `active` (actuators may act) excludes preEnabled too.
Each update also says which event types' alerts the driver should see now (`alert_types`).
"""

import enum

from common.realtime import DT_CTRL
from selfdrive.selfdrived.events import ET, Events

SOFT_DISABLE_TIME = 3.0  # s


class State(enum.StrEnum):
    """Values are SelfdriveState.OpenpilotState names."""
    disabled = "disabled"
    preEnabled = "preEnabled"
    enabled = "enabled"
    softDisabling = "softDisabling"
    overriding = "overriding"


ENABLED_STATES = frozenset({State.preEnabled, State.enabled, State.softDisabling, State.overriding})
ACTIVE_STATES = frozenset({State.enabled, State.softDisabling, State.overriding})
OVERRIDES = (ET.OVERRIDE_LATERAL, ET.OVERRIDE_LONGITUDINAL)


class StateMachine:
    def __init__(self, dt: float = DT_CTRL):
        self.state = State.disabled
        self.soft_disable_frames = round(SOFT_DISABLE_TIME / dt)
        self.soft_disable_timer = 0
        self.alert_types: list[ET] = []

    @property
    def enabled(self) -> bool:
        return self.state in ENABLED_STATES

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def update(self, events: Events) -> tuple[bool, bool]:
        """Steps the machine for this cycle's events; returns (enabled, active)."""
        self.alert_types = [ET.PERMANENT]
        self.soft_disable_timer = max(0, self.soft_disable_timer - 1)
        if self.state == State.disabled:
            self._from_disabled(events)
        else:
            self._from_engaged(events)
        if self.state in ENABLED_STATES:
            self.alert_types.append(ET.WARNING)
        return self.enabled, self.active

    def _go(self, state: State, *alerts: ET) -> None:
        self.state = state
        self.alert_types.extend(alerts)

    def _from_disabled(self, events: Events) -> None:
        if not events.contains(ET.ENABLE):
            return
        if events.contains(ET.NO_ENTRY):
            self._go(State.disabled, ET.NO_ENTRY)
        elif events.contains(ET.PRE_ENABLE):
            self._go(State.preEnabled, ET.PRE_ENABLE)
        elif any(events.contains(o) for o in OVERRIDES):
            self._go(State.overriding, ET.ENABLE, *OVERRIDES)
        else:
            self._go(State.enabled, ET.ENABLE)

    def _from_engaged(self, events: Events) -> None:
        if events.contains(ET.USER_DISABLE):
            self._go(State.disabled, ET.USER_DISABLE)
        elif events.contains(ET.IMMEDIATE_DISABLE):
            self._go(State.disabled, ET.IMMEDIATE_DISABLE)
        elif self.state == State.enabled:
            if events.contains(ET.SOFT_DISABLE):
                self._start_soft_disable()
            elif any(events.contains(o) for o in OVERRIDES):
                self._go(State.overriding, *OVERRIDES)
        elif self.state == State.softDisabling:
            if not events.contains(ET.SOFT_DISABLE):
                self._go(State.enabled)  # the condition cleared in time: keep driving
            elif self.soft_disable_timer > 0:
                self._go(State.softDisabling, ET.SOFT_DISABLE)
            else:
                self._go(State.disabled, ET.SOFT_DISABLE)
        elif self.state == State.preEnabled:
            if events.contains(ET.SOFT_DISABLE):
                self._go(State.disabled, ET.SOFT_DISABLE)
            elif events.contains(ET.PRE_ENABLE):
                self._go(State.preEnabled, ET.PRE_ENABLE)
            else:
                self._go(State.enabled)
        elif self.state == State.overriding:
            if events.contains(ET.SOFT_DISABLE):
                self._start_soft_disable()
            elif any(events.contains(o) for o in OVERRIDES):
                self._go(State.overriding, *OVERRIDES)
            else:
                self._go(State.enabled)

    def _start_soft_disable(self) -> None:
        self.soft_disable_timer = self.soft_disable_frames
        self._go(State.softDisabling, ET.SOFT_DISABLE)
