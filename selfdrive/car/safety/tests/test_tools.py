"""The safety layer's own tooling, each run on a small scale: the mutation check on a sample of
mutants, gcov line coverage, and the fuzz tests against an AddressSanitizer + UBSan build."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from selfdrive.car.safety.tests.build_variant import ROOT, SANITIZE, VariantBuilder, run_tests

TEST_DIR = "selfdrive/car/safety/tests"
UNIT_TESTS = [f"{TEST_DIR}/{n}" for n in ("test_toyota_tx.py", "test_toyota_rx.py", "test_core.py", "test_modes.py")]


def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


class TestVariantLoading:
    def test_wrapper_loads_the_module_named_by_the_environment(self, tmp_path):
        code = "from selfdrive.car.safety import load_module; print(load_module().__file__)"
        env = {**os.environ, "ROADPILOT_SAFETY_LIB": str(tmp_path / "missing.so")}
        result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
        assert result.returncode != 0 and "missing.so" in result.stderr
        module = VariantBuilder(tmp_path, ["-O0"]).build()
        env["ROADPILOT_SAFETY_LIB"] = str(module)
        result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
        assert result.stdout.strip() == str(module)


def test_mutation_sample():
    """Three mutants picked at random (fixed seed) must each make the unit tests fail."""
    result = run_tool("tools/safety_mutation.py", "--sample", "3", "--seed", "7", "--tests", *UNIT_TESTS)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "3 killed, 0 survived, 0 did not compile" in result.stdout


def test_mutation_script_reports_a_survivor(tmp_path):
    """With no tests that look at the rule, a mutant survives and the script says so and fails."""
    empty = tmp_path / "test_nothing.py"
    empty.write_text("def test_nothing():\n    pass\n")
    result = run_tool("tools/safety_mutation.py", "--only", "TOYOTA_MAX_TORQUE 1500 -> 1499", "--tests", str(empty))
    assert result.returncode == 1
    assert "SURVIVOR: modes/toyota.c" in result.stdout and "TOYOTA_MAX_TORQUE" in result.stdout


def test_line_coverage_is_complete():
    result = run_tool("tools/safety_coverage.py", "--tests", *UNIT_TESTS)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "100.00%" in result.stdout.splitlines()[-1]


class TestSanitizers:
    """ASan needs to be the first library in the process: a Python host gets it through LD_PRELOAD."""

    @pytest.fixture(scope="class")
    @classmethod
    def builder(cls, tmp_path_factory) -> VariantBuilder:
        return VariantBuilder(tmp_path_factory.mktemp("asan"), SANITIZE, ["-fsanitize=address,undefined"])

    @staticmethod
    def env() -> dict[str, str]:
        libasan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
        assert Path(libasan).exists()
        # Python's own allocations look like leaks to LSan: leak checking is off, everything else halts.
        return {"LD_PRELOAD": libasan, "ASAN_OPTIONS": "detect_leaks=0:halt_on_error=1",
                "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1", "SAFETY_FUZZ_FRAMES": "8000"}

    def test_fuzz_is_clean_under_asan_and_ubsan(self, builder):
        result = run_tests(builder.build(), [f"{TEST_DIR}/test_fuzz.py"], self.env(), extra_args=("-s",))
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        assert "runtime error" not in result.stderr and "AddressSanitizer" not in result.stderr

    @pytest.mark.parametrize("old,new,report", [
        # an index one past the array: UBSan's bounds check sees the array type
        ("i != TOYOTA_EPS_SAMPLES;", "i != TOYOTA_EPS_SAMPLES + 1;", "runtime error: index 6 out of bounds"),
        # the same read through a pointer the compiler cannot follow: only ASan's shadow memory sees it
        ("meas_max = safety_max(meas_max, eps_samples[i]);",
         "const int32_t *volatile hidden = eps_samples; meas_max = safety_max(meas_max, hidden[i + 1]);",
         "global-buffer-overflow"),
    ])
    def test_sanitizers_catch_an_out_of_bounds_read(self, builder, old, new, report):
        """Positive controls: the same setup reports a deliberate read past the EPS sample array."""
        source = (ROOT / "selfdrive/car/safety/modes/toyota.c").read_text()
        assert old in source
        module = builder.build({"modes/toyota.c": source.replace(old, new)})
        result = run_tests(module, [f"{TEST_DIR}/test_toyota_tx.py::TestTorqueError"], self.env(), extra_args=("-s",))
        assert result.returncode != 0
        assert report in result.stderr
