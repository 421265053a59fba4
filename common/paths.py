"""Where roadpilot keeps data on disk. `ROADPILOT_DATA` moves all of it (tests point it at a temp dir)."""

import os


def data_dir() -> str:
    return os.environ.get("ROADPILOT_DATA", os.path.join(os.path.expanduser("~"), ".roadpilot"))


def params_dir() -> str:
    return os.path.join(data_dir(), "params")


def routes_dir() -> str:
    return os.path.join(data_dir(), "routes")
