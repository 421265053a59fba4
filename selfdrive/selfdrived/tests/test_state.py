import pytest

from selfdrive.selfdrived.events import ET, Events
from selfdrive.selfdrived.state import ACTIVE_STATES, ENABLED_STATES, SOFT_DISABLE_TIME, State, StateMachine

S = State
ALL_ETS = frozenset(ET)


class TypesOnly:
    """Stands in for Events: the state machine only asks which event types are present."""

    def __init__(self, *types: ET):
        self.types = set(types)

    def contains(self, et: ET) -> bool:
        return et in self.types


def machine(state: State, timer: int = 100) -> StateMachine:
    sm = StateMachine()
    sm.state = state
    sm.soft_disable_timer = timer
    return sm


# (from state, event types this cycle, to state, alert types shown besides PERMANENT/WARNING)
TRANSITIONS = [
    # disabled: only ENABLE moves it, and NO_ENTRY vetoes
    (S.disabled, (), S.disabled, ()),
    (S.disabled, (ET.ENABLE,), S.enabled, (ET.ENABLE,)),
    (S.disabled, (ET.ENABLE, ET.NO_ENTRY), S.disabled, (ET.NO_ENTRY,)),
    (S.disabled, (ET.ENABLE, ET.NO_ENTRY, ET.PRE_ENABLE), S.disabled, (ET.NO_ENTRY,)),
    (S.disabled, (ET.ENABLE, ET.PRE_ENABLE), S.preEnabled, (ET.PRE_ENABLE,)),
    (S.disabled, (ET.ENABLE, ET.OVERRIDE_LATERAL), S.overriding, (ET.ENABLE, ET.OVERRIDE_LATERAL,
                                                                 ET.OVERRIDE_LONGITUDINAL)),
    (S.disabled, (ET.ENABLE, ET.OVERRIDE_LONGITUDINAL), S.overriding, (ET.ENABLE, ET.OVERRIDE_LATERAL,
                                                                      ET.OVERRIDE_LONGITUDINAL)),
    (S.disabled, (ET.NO_ENTRY,), S.disabled, ()),
    (S.disabled, (ET.PRE_ENABLE,), S.disabled, ()),
    (S.disabled, (ET.OVERRIDE_LATERAL,), S.disabled, ()),
    (S.disabled, (ET.SOFT_DISABLE, ET.USER_DISABLE, ET.IMMEDIATE_DISABLE), S.disabled, ()),
    # enabled
    (S.enabled, (), S.enabled, ()),
    (S.enabled, (ET.ENABLE, ET.NO_ENTRY, ET.PRE_ENABLE), S.enabled, ()),
    (S.enabled, (ET.USER_DISABLE,), S.disabled, (ET.USER_DISABLE,)),
    (S.enabled, (ET.IMMEDIATE_DISABLE,), S.disabled, (ET.IMMEDIATE_DISABLE,)),
    (S.enabled, (ET.USER_DISABLE, ET.IMMEDIATE_DISABLE, ET.SOFT_DISABLE), S.disabled, (ET.USER_DISABLE,)),
    (S.enabled, (ET.IMMEDIATE_DISABLE, ET.SOFT_DISABLE), S.disabled, (ET.IMMEDIATE_DISABLE,)),
    (S.enabled, (ET.SOFT_DISABLE,), S.softDisabling, (ET.SOFT_DISABLE,)),
    (S.enabled, (ET.SOFT_DISABLE, ET.OVERRIDE_LATERAL), S.softDisabling, (ET.SOFT_DISABLE,)),
    (S.enabled, (ET.OVERRIDE_LATERAL,), S.overriding, (ET.OVERRIDE_LATERAL, ET.OVERRIDE_LONGITUDINAL)),
    (S.enabled, (ET.OVERRIDE_LONGITUDINAL,), S.overriding, (ET.OVERRIDE_LATERAL, ET.OVERRIDE_LONGITUDINAL)),
    # softDisabling (timer running)
    (S.softDisabling, (ET.SOFT_DISABLE,), S.softDisabling, (ET.SOFT_DISABLE,)),
    (S.softDisabling, (), S.enabled, ()),
    (S.softDisabling, (ET.OVERRIDE_LATERAL,), S.enabled, ()),
    (S.softDisabling, (ET.USER_DISABLE, ET.SOFT_DISABLE), S.disabled, (ET.USER_DISABLE,)),
    (S.softDisabling, (ET.IMMEDIATE_DISABLE, ET.SOFT_DISABLE), S.disabled, (ET.IMMEDIATE_DISABLE,)),
    # preEnabled
    (S.preEnabled, (ET.PRE_ENABLE,), S.preEnabled, (ET.PRE_ENABLE,)),
    (S.preEnabled, (), S.enabled, ()),
    (S.preEnabled, (ET.SOFT_DISABLE, ET.PRE_ENABLE), S.disabled, (ET.SOFT_DISABLE,)),
    (S.preEnabled, (ET.USER_DISABLE, ET.PRE_ENABLE), S.disabled, (ET.USER_DISABLE,)),
    (S.preEnabled, (ET.IMMEDIATE_DISABLE,), S.disabled, (ET.IMMEDIATE_DISABLE,)),
    # overriding
    (S.overriding, (ET.OVERRIDE_LATERAL,), S.overriding, (ET.OVERRIDE_LATERAL, ET.OVERRIDE_LONGITUDINAL)),
    (S.overriding, (ET.OVERRIDE_LONGITUDINAL,), S.overriding, (ET.OVERRIDE_LATERAL, ET.OVERRIDE_LONGITUDINAL)),
    (S.overriding, (), S.enabled, ()),
    (S.overriding, (ET.SOFT_DISABLE, ET.OVERRIDE_LATERAL), S.softDisabling, (ET.SOFT_DISABLE,)),
    (S.overriding, (ET.USER_DISABLE, ET.OVERRIDE_LONGITUDINAL), S.disabled, (ET.USER_DISABLE,)),
    (S.overriding, (ET.IMMEDIATE_DISABLE,), S.disabled, (ET.IMMEDIATE_DISABLE,)),
]


class TestTransitions:
    @pytest.mark.parametrize("frm, types, to, alerts", TRANSITIONS,
                             ids=[f"{f}-{'+'.join(t) or 'none'}" for f, t, _, _ in TRANSITIONS])
    def test_transition(self, frm, types, to, alerts):
        sm = machine(frm)
        enabled, active = sm.update(TypesOnly(*types))
        assert sm.state == to
        assert enabled == (to in ENABLED_STATES) and active == (to in ACTIVE_STATES)
        expected = {ET.PERMANENT, *alerts} | ({ET.WARNING} if to in ENABLED_STATES else set())
        assert set(sm.alert_types) == expected

    def test_every_state_pair_that_can_happen_is_in_the_table(self):
        pairs = {(f, t) for f, _, t, _ in TRANSITIONS}
        expected = {
            (S.disabled, S.disabled), (S.disabled, S.enabled), (S.disabled, S.preEnabled), (S.disabled, S.overriding),
            (S.enabled, S.enabled), (S.enabled, S.disabled), (S.enabled, S.softDisabling), (S.enabled, S.overriding),
            (S.softDisabling, S.softDisabling), (S.softDisabling, S.enabled), (S.softDisabling, S.disabled),
            (S.preEnabled, S.preEnabled), (S.preEnabled, S.enabled), (S.preEnabled, S.disabled),
            (S.overriding, S.overriding), (S.overriding, S.enabled), (S.overriding, S.softDisabling),
            (S.overriding, S.disabled),
        }
        assert pairs == expected

    @pytest.mark.parametrize("state", list(State))
    def test_every_event_type_combination_keeps_a_valid_state(self, state):
        # no combination of types may leave disabled without ENABLE, or stay engaged through a hard disable
        import itertools
        for n in range(3):
            for types in itertools.combinations(sorted(ALL_ETS), n):
                sm = machine(state)
                sm.update(TypesOnly(*types))
                if state == S.disabled and ET.ENABLE not in types:
                    assert sm.state == S.disabled
                if state != S.disabled and ({ET.USER_DISABLE, ET.IMMEDIATE_DISABLE} & set(types)):
                    assert sm.state == S.disabled


class TestSoftDisableTimer:
    def test_soft_disable_lasts_soft_disable_time(self):
        sm = machine(S.enabled, timer=0)
        steps = 0
        sm.update(TypesOnly(ET.SOFT_DISABLE))
        while sm.state == S.softDisabling:
            sm.update(TypesOnly(ET.SOFT_DISABLE))
            steps += 1
        assert sm.state == S.disabled and steps == round(SOFT_DISABLE_TIME / 0.01)
        assert ET.SOFT_DISABLE in sm.alert_types  # the alert stays on the cycle that disengages

    def test_timer_expired_disables(self):
        sm = machine(S.softDisabling, timer=0)
        sm.update(TypesOnly(ET.SOFT_DISABLE))
        assert sm.state == S.disabled

    def test_recovering_restarts_the_full_timer(self):
        sm = machine(S.enabled, timer=0)
        for _ in range(200):
            sm.update(TypesOnly(ET.SOFT_DISABLE))
        sm.update(TypesOnly())
        assert sm.state == S.enabled
        sm.update(TypesOnly(ET.SOFT_DISABLE))
        assert sm.soft_disable_timer == sm.soft_disable_frames


class TestWithRealEvents:
    def test_engage_and_brake(self):
        sm, ev = StateMachine(), Events()
        ev.add("cruiseEngaged")
        assert sm.update(ev) == (True, True)
        ev.clear()
        ev.add("brakePressed")
        assert sm.update(ev) == (False, False)

    def test_comm_issue_blocks_engagement(self):
        sm, ev = StateMachine(), Events()
        ev.add("cruiseEngaged")
        ev.add("commIssue", services="modelV2")
        sm.update(ev)
        assert sm.state == S.disabled and ev.create_alerts(sm.alert_types)[0][0] == "commIssue/noEntry"
