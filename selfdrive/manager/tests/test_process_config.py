"""Invariants of the process table."""

import importlib
import importlib.util
import re

import pytest

from selfdrive.manager import process_config as pc
from selfdrive.manager.process_config import MODES, PROCESSES


def module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


class TestTable:
    def test_names_unique_and_usable_as_titles(self):
        names = [p.name for p in PROCESSES]
        assert len(names) == len(set(names))
        for n in names:
            assert re.fullmatch(r"[a-z][a-z0-9_]*", n), n

    @pytest.mark.parametrize("p", PROCESSES, ids=lambda p: p.name)
    def test_runnable_module_exists_with_main(self, p):
        assert module_exists(p.module), f"{p.name}: module {p.module} does not exist"
        assert callable(getattr(importlib.import_module(p.module), "main", None)), f"{p.module} has no main()"

    @pytest.mark.parametrize("p", [p for p in PROCESSES if p.name != "replay"], ids=lambda p: p.name)
    def test_every_process_declares_what_it_publishes(self, p):
        """replay (whose services are the route's) aside: `roadpilot replay --stack` holds back what they declare."""
        from cereal.services import SERVICES
        pubs = getattr(importlib.import_module(p.module), "PUBLISHES", None)
        assert isinstance(pubs, tuple), f"{p.module} declares no PUBLISHES tuple"
        assert set(pubs) <= set(SERVICES), f"{p.module}: {set(pubs) - set(SERVICES)} are not services"

    @pytest.mark.parametrize("mode", MODES)
    def test_every_mode_collects_logs(self, mode):
        runs = {p.name for p in PROCESSES if p.runs_in(mode)}
        assert {"logmessaged", "loggerd"} <= runs

    def test_restart_policies_are_sane(self):
        for p in PROCESSES:
            r = p.restart
            assert 0 < r.initial_s <= r.max_s < r.stable_s, p.name


class TestPredicates:
    @pytest.mark.parametrize("mode", MODES)
    def test_exactly_one_mode_predicate_holds(self, mode):
        ctx = pc.RunContext(mode)
        assert [pc.sim(ctx), pc.replay(ctx), pc.device(ctx)].count(True) == 1
        assert pc.always(ctx)

    def test_combinators(self):
        onboard_sources = pc.any_of(pc.replay, pc.device)
        assert [onboard_sources(pc.RunContext(m)) for m in MODES] == [m != "sim" for m in MODES]
        assert not pc.all_of(pc.sim, pc.replay)(pc.RunContext("sim"))
        assert pc.all_of(pc.always, pc.sim)(pc.RunContext("sim"))
        assert pc.negate(pc.sim)(pc.RunContext("device")) and not pc.negate(pc.sim)(pc.RunContext("sim"))
