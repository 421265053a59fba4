"""Every test gets its own IPC prefix and data directory, so tests never see each other's sockets,
params or routes, and the run directory is removed afterwards."""

import os
import shutil
import uuid

import pytest


@pytest.fixture(autouse=True)
def isolated_roadpilot(tmp_path, monkeypatch):
    monkeypatch.setenv("ROADPILOT_PREFIX", f"t{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("ROADPILOT_DATA", str(tmp_path / "data"))
    from common.paths import run_dir
    rd = run_dir()
    yield
    shutil.rmtree(rd, ignore_errors=True)


def pytest_configure(config):
    # Tests start real daemons as subprocesses; they must import the checkout, not an installed copy.
    root = os.path.dirname(os.path.abspath(__file__))
    os.environ["PYTHONPATH"] = root + os.pathsep + os.environ.get("PYTHONPATH", "")


# Tests that start a whole stack of processes (the simulator or a camera, every daemon, the manager). pytest runs on
# two workers (pyproject.toml: -n 2): these run one at a time on one worker, in this order, while the other worker
# runs everything else beside them, so they also prove they hold on a loaded machine. A file here that does not
# exist is an error: the list must follow the tree.
STACK_TESTS = (
    "tests/test_soak.py",
    "tests/test_closed_loop.py",
    "tests/test_faults.py",
    "tests/test_full_disk.py",
    "tests/test_determinism.py",
    "tests/test_two_stacks.py",
    "tests/test_eval.py",
    "tests/test_identification.py",
    "tools/sim/tests/test_bridge.py",
    "tests/test_cli.py",
    "tests/test_device_cli.py",
    "selfdrive/manager/tests/test_manager.py",
)


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    root = os.path.dirname(os.path.abspath(__file__))
    missing = [f for f in STACK_TESTS if not os.path.isfile(os.path.join(root, f))]
    if missing:
        raise pytest.UsageError(f"conftest.STACK_TESTS names files that do not exist: {missing}")

    class StackScheduling(LoadScopeScheduling):
        """One work unit for all the stack tests; every other test file is a unit of its own."""

        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "stack" if path in STACK_TESTS else path

    return StackScheduling(config, log)
