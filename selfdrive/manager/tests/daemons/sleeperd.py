"""Runs until signalled, with default signal handling: the well-behaved daemon."""

import time


def main() -> None:
    while True:
        time.sleep(1.0)
