"""One run = one isolated world: its route, its UI port, its params; corrupt saved values reset and named."""

import os
import socket

from common.params import Params
from common.paths import routes_dir
from selfdrive.loggerd.route_writer import ROUTE_ENV
from selfdrive.manager import manager
from selfdrive.manager.process_config import ProcessConfig, always
from selfdrive.ui.config import PORT_ENV


def test_a_second_run_gets_its_own_route_and_a_free_ui_port():
    env = {k: v for k, v in os.environ.items() if k not in (ROUTE_ENV, PORT_ENV)}
    first = manager.run_env(env)
    with socket.socket() as held:  # the first run's uid holds its port
        held.bind(("127.0.0.1", int(first[PORT_ENV])))
        second = manager.run_env(env)
    assert first[ROUTE_ENV] != second[ROUTE_ENV]
    assert first[PORT_ENV] != second[PORT_ENV]
    assert all(os.path.isdir(os.path.join(routes_dir(), e[ROUTE_ENV])) for e in (first, second))  # reserved now
    given = manager.run_env({**env, ROUTE_ENV: "mine", PORT_ENV: "9999"})
    assert (given[ROUTE_ENV], given[PORT_ENV]) == ("mine", "9999")  # what the caller chose is kept


def test_manager_start_resets_a_corrupt_calibration_and_names_it(monkeypatch):
    params = Params()
    with open(os.path.join(params.root, "CalibrationParams"), "wb") as f:
        f.write(b'{"rpy": [0.0, 0.0, 0.0], "blocks": [], "valid_blocks": 1e999}')
    params.put("LongitudinalPersonality", 2)
    # a run of one short-lived process: what matters is what the manager did to params at start
    quiet = ProcessConfig("quiet", "selfdrive.manager.tests.quiet_process", always)
    config = manager.ManagerConfig(mode="sim", processes=(quiet,), grace_s=2.0)
    assert manager.run(config, duration=0.5) == 0
    assert list(params.get("ParamsReset")) == ["CalibrationParams"]
    assert params.get("CalibrationParams") is None and params.get("LongitudinalPersonality") == 2
    assert os.path.exists(os.path.join(params.root, ".CalibrationParams.corrupt"))  # kept for a look
