"""logmessaged: collects every process's JSON log records (ZMQ PULL) and publishes `logMessage`."""

import json
import signal

import zmq

from cereal import messaging
from common.swaglog import cloudlog, cloudlog_bind, log_endpoint

PUBLISHES = ("logMessage",)


def to_event(raw: bytes):
    """One JSON record → a `logMessage` Event. A record that is not JSON is kept as text, never lost."""
    msg = messaging.new_message("logMessage")
    text = raw.decode("utf-8", errors="replace")
    msg.logMessage.msg = text
    try:
        rec = json.loads(text)
        level = int(rec.get("levelnum", 0))
        if not -2**31 <= level < 2**31:  # levelnum is an Int32: capnp would raise KjException
            raise ValueError(f"levelnum {level} is not an Int32")
        msg.logMessage.levelnum = level
        msg.logMessage.name = str(rec.get("name", ""))
    # not JSON, or nested deeper than json parses (RecursionError); not a dict; levelnum not a number (int(inf):
    # OverflowError) or not an Int32
    except (ValueError, AttributeError, TypeError, OverflowError, RecursionError):
        msg.logMessage.name = "?"
    return msg


def main() -> None:
    cloudlog_bind(name="logmessaged")
    sock = zmq.Context.instance().socket(zmq.PULL)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(log_endpoint())
    pm = messaging.PubMaster(list(PUBLISHES))
    cloudlog.info("logmessaged started")
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    while not stopping:
        if sock.poll(1000):
            pm.send("logMessage", to_event(sock.recv()))
    # the records sent before the stop (the manager's "stopped ..." lines among them) still go out
    while sock.poll(50):
        pm.send("logMessage", to_event(sock.recv()))
    pm.close()


if __name__ == "__main__":
    main()
