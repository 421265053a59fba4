"""Runs one daemon under process replay's stepped clock (cereal/messaging/stepped.py says what that means):

    ROADPILOT_CLOCK=stepped ROADPILOT_LOCKSTEP=<control file> python -m tools.replay.lockstep <module> [args...]

The daemon's code is the one a car runs: the clock and the messaging layer step it. This runner only applies
ROADPILOT_LOCKSTEP_SET first (module constants a test changes, to show that changed behaviour shows up as a replay
diff without editing the daemon), then runs the module as `__main__`. The driver is tools/replay/lockstep_driver.py.
"""

import importlib
import json
import os
import runpy
import sys

from cereal.messaging.stepped import ENV

SET_ENV = "ROADPILOT_LOCKSTEP_SET"  # "pkg.module:NAME=<json>;..." set before the daemon runs (tests change behaviour)


def apply_settings(spec: str) -> None:
    """`pkg.module:NAME=<json>;...`: module constants replaced before the daemon starts (e.g. a controller gain)."""
    for item in filter(None, (x.strip() for x in spec.split(";"))):
        target, _, value = item.partition("=")
        module, _, name = target.partition(":")
        mod = importlib.import_module(module)
        if not hasattr(mod, name):
            raise SystemExit(f"lockstep: {module} has no {name} to set")
        setattr(mod, name, json.loads(value))


def child_main() -> None:
    if len(sys.argv) < 2 or ENV not in os.environ:
        sys.exit(f"usage: ROADPILOT_CLOCK=stepped {ENV}=<control file> "
                 "python -m tools.replay.lockstep <module> [args...]")
    apply_settings(os.environ.get(SET_ENV, ""))
    module, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    child_main()
