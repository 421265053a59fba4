"""A manager over the test daemons: `python -m selfdrive.manager.tests.harness`.

Short backoffs and a 1 s stop grace keep the tests quick; everything else is the real manager.
"""

import sys

from common.swaglog import cloudlog_bind
from selfdrive.manager import manager
from selfdrive.manager.process_config import ProcessConfig, RestartPolicy, always, negate, sim

FAST = RestartPolicy(initial_s=0.2, max_s=1.0, stable_s=30.0)
TEST_PROCESSES = (
    ProcessConfig("sleeperd", "selfdrive.manager.tests.daemons.sleeperd", always, FAST),
    ProcessConfig("stubbornd", "selfdrive.manager.tests.daemons.stubbornd", always, FAST),
    ProcessConfig("crashd", "selfdrive.manager.tests.daemons.crashd", always, FAST),
    ProcessConfig("exitd", "selfdrive.manager.tests.daemons.exitd", always, RestartPolicy(enabled=False)),
    ProcessConfig("replayonlyd", "selfdrive.manager.tests.daemons.sleeperd", negate(sim), FAST),
)
GRACE_S = 1.0


def main() -> int:
    cloudlog_bind(name="manager")
    return manager.run(manager.ManagerConfig(mode="sim", processes=TEST_PROCESSES, grace_s=GRACE_S))


if __name__ == "__main__":
    sys.exit(main())
