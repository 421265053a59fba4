"""logmessaged: collects every process's JSON log records (ZMQ PULL) and publishes `logMessage`."""

import json
import signal

import zmq

from cereal import messaging
from common.swaglog import cloudlog, cloudlog_bind, log_endpoint


def to_event(raw: bytes):
    """One JSON record → a `logMessage` Event. A record that is not JSON is kept as text, never lost."""
    msg = messaging.new_message("logMessage")
    text = raw.decode("utf-8", errors="replace")
    msg.logMessage.msg = text
    try:
        rec = json.loads(text)
        msg.logMessage.levelnum = int(rec.get("levelnum", 0))
        msg.logMessage.name = str(rec.get("name", ""))
    except (ValueError, AttributeError, TypeError):
        msg.logMessage.name = "?"
    return msg


def main() -> None:
    cloudlog_bind(name="logmessaged")
    sock = zmq.Context.instance().socket(zmq.PULL)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(log_endpoint())
    pm = messaging.PubMaster(["logMessage"])
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
