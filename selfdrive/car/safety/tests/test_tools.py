"""The safety layer's own tooling, each run on a small scale: the mutation check on specific mutants of
opendbc's torque limit code, gcov line coverage, and the fuzz and brand tests against an AddressSanitizer +
UBSan build."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from selfdrive.car.safety.tests.build_variant import ROOT, SAFETY, SANITIZE, VariantBuilder, run_tests

TEST_DIR = "selfdrive/car/safety/tests"
# (--only text naming one mutant, why the tests must notice it)
LIMIT_MUTANTS = [
    ("helpers.h:44 '>' -> '>=' in `return (val > MAX_VAL)", "a torque exactly at a brand's limit would be refused"),
    ("lateral.h:99 '!=' -> '==' in `if (!controls_allowed && (desired_torque != 0))", "torque without engagement"),
    ("toyota.h:162 .max_torque 1500 -> 1501", "Toyota torque one unit past opendbc's limit"),
]


def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


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


class TestMutation:
    def test_the_brand_tests_kill_mutants_of_opendbcs_torque_limits(self):
        """Each named mutant, built against a copy of opendbc's headers, makes the brand tests fail."""
        result = run_tool("tools/safety_mutation.py", "--tests", f"{TEST_DIR}/test_brands.py",
                          *[a for only, _ in LIMIT_MUTANTS for a in ("--only", only)])
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
        assert f"{len(LIMIT_MUTANTS)} killed, 0 survived, 0 did not compile" in result.stdout, result.stdout[-2000:]

    def test_a_mutant_no_test_looks_at_survives_and_fails_the_run(self, tmp_path):
        empty = tmp_path / "test_nothing.py"
        empty.write_text("def test_nothing():\n    pass\n")
        result = run_tool("tools/safety_mutation.py", "--only", LIMIT_MUTANTS[2][0], "--tests", str(empty))
        assert result.returncode == 1
        assert "SURVIVOR: opendbc/safety/modes/toyota.h:162 .max_torque 1500 -> 1501" in result.stdout

    def test_the_wheel_is_never_touched(self):
        from selfdrive.car.safety.tests.build_variant import OPENDBC_SAFETY
        assert "max_torque = 1500," in (OPENDBC_SAFETY / "modes" / "toyota.h").read_text()


def test_line_coverage_report():
    result = run_tool("tools/safety_coverage.py", "--tests", f"{TEST_DIR}/test_core.py", f"{TEST_DIR}/test_brands.py")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "safety.c" in result.stdout and "modes/toyota.h" in result.stdout


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
        # pycryptodome (imported with opendbc.car) dlopens with RTLD_DEEPBIND, which ASan refuses; it has a switch.
        return {"LD_PRELOAD": libasan, "PYCRYPTODOME_DISABLE_DEEPBIND": "1",
                "ASAN_OPTIONS": "detect_leaks=0:halt_on_error=1", "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
                "SAFETY_FUZZ_FRAMES": "3000"}

    def test_fuzz_and_brands_are_clean_under_asan_and_ubsan(self, builder):
        result = run_tests(builder.build(), [f"{TEST_DIR}/test_fuzz.py", f"{TEST_DIR}/test_brands.py"], self.env(),
                           extra_args=("-s",))
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        assert "runtime error" not in result.stderr and "AddressSanitizer" not in result.stderr

    @pytest.mark.parametrize("old,new,report", [
        # an index one past the array: UBSan's bounds check sees the array type
        ("RP_REASON_NAMES[reason]", "RP_REASON_NAMES[reason + 1]", "runtime error: index 14 out of bounds"),
        # the same read through a pointer the compiler cannot follow: only ASan's shadow memory sees it
        ("  return ((reason >= 0)", "  const char *const *volatile hidden = RP_REASON_NAMES;\n"
         "  return hidden[reason + 1] != NULL ? hidden[reason + 1] : \"\";\n  return ((reason >= 0)",
         "global-buffer-overflow"),
    ])
    def test_sanitizers_catch_an_out_of_bounds_read(self, builder, old, new, report):
        """Positive controls: the same setup reports a deliberate read past the reason-name array."""
        source = (SAFETY / "safety.c").read_text()
        assert old in source
        module = builder.build({"safety.c": source.replace(old, new)})
        result = run_tests(module, [f"{TEST_DIR}/test_core.py::TestModes::test_silent_modes_send_nothing"], self.env(),
                           extra_args=("-s",))
        assert result.returncode != 0
        assert report in result.stderr
