"""A process that does nothing until it is stopped: for manager tests about the run, not its children."""

import signal


def main() -> None:
    signal.pause()
