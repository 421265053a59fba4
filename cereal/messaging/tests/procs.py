"""Small real processes the messaging tests drive (run with `python -m cereal.messaging.tests.procs ...`).

publisher SERVICE HZ: publishes SERVICE at HZ with a counter; reads commands from stdin:
  `rate N` (change rate), `valid 0|1`, `stop` (exit).
relay IN OUT: republishes OUT for every IN message with valid = sm.all_checks(), like a daemon would.
"""

import sys
import threading
import time

from cereal import messaging

COUNTER_FIELD = {"carState": "vEgo", "controlsState": "aTarget", "deviceState": "uptime"}


def publisher(service: str, hz: float) -> None:
    state = {"hz": hz, "valid": True, "stop": False}

    def read_commands():
        for line in sys.stdin:
            cmd, *arg = line.split()
            if cmd == "rate":
                state["hz"] = float(arg[0])
            elif cmd == "valid":
                state["valid"] = arg[0] == "1"
            elif cmd == "stop":
                break
        state["stop"] = True

    threading.Thread(target=read_commands, daemon=True).start()
    pm = messaging.PubMaster([service])
    i, next_t = 0, time.monotonic()
    print("ready", flush=True)
    while not state["stop"]:
        msg = messaging.new_message(service, valid=state["valid"])
        setattr(getattr(msg, service), COUNTER_FIELD[service], float(i))
        pm.send(service, msg)
        i += 1
        next_t += 1.0 / state["hz"]
        time.sleep(max(0.0, next_t - time.monotonic()))


def relay(src: str, dst: str) -> None:
    sm = messaging.SubMaster([src])
    pm = messaging.PubMaster([dst])
    print("ready", flush=True)
    while True:
        sm.update(100)
        if sm.updated[src]:
            pm.send(dst, messaging.new_message(dst, valid=sm.all_checks()))


if __name__ == "__main__":
    if sys.argv[1] == "publisher":
        publisher(sys.argv[2], float(sys.argv[3]))
    else:
        relay(sys.argv[2], sys.argv[3])
