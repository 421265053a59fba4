"""Restart backoff, exit descriptions and the manager's typed config (BLOCK/ONLY)."""

import signal

import pytest

from selfdrive.manager.manager import ManagerConfig, config_from_env, parse_names
from selfdrive.manager.process import Backoff, describe_exit
from selfdrive.manager.process_config import PROCESSES, RestartPolicy


class TestBackoff:
    def test_doubles_up_to_the_cap(self):
        b = Backoff(RestartPolicy(initial_s=0.5, max_s=10.0, stable_s=30.0))
        assert [b.on_exit(1.0) for _ in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]

    def test_a_stable_run_resets_it(self):
        b = Backoff(RestartPolicy(initial_s=0.5, max_s=10.0, stable_s=30.0))
        for _ in range(5):
            b.on_exit(0.1)
        assert b.on_exit(30.0) == 0.5
        assert b.on_exit(0.1) == 1.0

    def test_a_run_just_short_of_stable_does_not(self):
        b = Backoff(RestartPolicy(initial_s=0.5, max_s=10.0, stable_s=30.0))
        b.on_exit(0.1)
        b.on_exit(0.1)
        assert b.on_exit(29.9) == 2.0


@pytest.mark.parametrize("code, text", [(0, "exit code 0"), (1, "exit code 1"), (-signal.SIGKILL, "killed by SIGKILL"),
                                        (-signal.SIGSEGV, "killed by SIGSEGV"), (-200, "killed by signal 200")])
def test_describe_exit(code, text):
    assert describe_exit(code) == text


class TestConfig:
    ALL = {p.name for p in PROCESSES if p.runs_in("sim")}  # these tests configure sim mode

    def wanted(self, cfg: ManagerConfig) -> set[str]:
        return {p.name for p in cfg.processes if cfg.should_run(p)}

    def test_default_runs_the_whole_mode(self):
        assert self.wanted(config_from_env("sim", {})) == self.ALL

    def test_only_and_block(self):
        assert self.wanted(config_from_env("sim", {"ONLY": "hardwared, loggerd"})) == {"hardwared", "loggerd"}
        assert self.wanted(config_from_env("sim", {"BLOCK": "loggerd"})) == self.ALL - {"loggerd"}
        both = config_from_env("device", {"ONLY": "hardwared,loggerd", "BLOCK": "loggerd"})
        assert self.wanted(both) == {"hardwared"}

    @pytest.mark.parametrize("value, names", [(None, None), ("", None), (" , ", None),
                                              ("a,b", {"a", "b"}), (" a , ,b,", {"a", "b"})])
    def test_parse_names(self, value, names):
        assert parse_names(value) == names

    def test_blank_only_runs_everything_rather_than_nothing(self):
        assert self.wanted(config_from_env("sim", {"ONLY": " ,"})) == self.ALL

    def test_unknown_name_is_an_error(self):
        with pytest.raises(ValueError, match="ONLY names 'hardward', which is not a process"):
            config_from_env("sim", {"ONLY": "hardward"})

    def test_bad_mode(self):
        with pytest.raises(ValueError, match="choose one of sim, replay, device"):
            ManagerConfig(mode="track")
