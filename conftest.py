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
    from cereal.messaging.endpoints import run_dir
    rd = run_dir()
    yield
    shutil.rmtree(rd, ignore_errors=True)


def pytest_configure(config):
    # Tests start real daemons as subprocesses; they must import the checkout, not an installed copy.
    root = os.path.dirname(os.path.abspath(__file__))
    os.environ["PYTHONPATH"] = root + os.pathsep + os.environ.get("PYTHONPATH", "")
