"""Crashes shortly after it starts, every time."""

import time


def main() -> None:
    time.sleep(0.1)
    raise RuntimeError("crashd crashes on purpose")
