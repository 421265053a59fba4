"""A tiny daemon for lockstep tests: one carState per `can` message (vEgo = frames in it), and one per 20 ms
without CAN (vEgo = -1), stamped by its own clock; `--sleep` sleeps 50 ms (virtual) before each answer;
a `can` frame at 0x666 makes it exit with code 3."""

import sys

from cereal import messaging
from common import clock


def main() -> None:
    sleep = "--sleep" in sys.argv
    can = messaging.sub_sock("can")
    pm = messaging.PubMaster(["carState"])
    while True:
        msg = messaging.recv_one(can, 20)
        if msg is not None and any(c.address == 0x666 for c in msg.can):
            sys.exit(3)
        if sleep:
            clock.sleep(0.05)
        out = messaging.new_message("carState")
        out.carState.vEgo = -1.0 if msg is None else float(len(msg.can))
        pm.send("carState", out)


if __name__ == "__main__":
    main()
