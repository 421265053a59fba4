"""Ignores SIGTERM and starts a child that ignores it too: stopping it takes SIGKILL to its whole group."""

import signal
import subprocess
import sys
import time

GRANDCHILD = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"


def main() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    subprocess.Popen([sys.executable, "-c", GRANDCHILD])
    while True:
        time.sleep(1.0)
