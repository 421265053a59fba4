"""loggerd: records every logged service into a route of rlog/qlog segments (see route_writer.py).

One loop at 20 Hz drains every socket that has data and hands the raw bytes to the RouteWriter. A
message is written exactly as received: loggerd checks only its framing header (cheap) so one bad
message can never make the rest of a file unsplittable, and never parses it. Which service a
message belongs to comes from the socket it arrived on.

The route name goes to `<run_dir>/current_route` (and the log) so other processes and tests find it;
a clean exit removes that file.
SIGTERM/SIGINT flush and close the files; SIGKILL loses at most the last flush period (~0.5 s).
"""

import argparse
import contextlib
import os
import signal
import time

import zmq

from cereal import messaging
from cereal.messaging.endpoints import run_dir
from cereal.services import SERVICES
from common.paths import routes_dir
from common.swaglog import cloudlog, cloudlog_bind
from selfdrive.loggerd.framing import is_one_message
from selfdrive.loggerd.route_writer import RouteWriter

DT = 0.05                 # loop period: batches ~5 messages per 100 Hz service per wake-up, keeps CPU low
DEFAULT_SEGMENT_SECONDS = 60.0


def logged_services() -> dict:
    return {s: v for s, v in SERVICES.items() if v.should_log}


def publish_route_name(name: str) -> str:
    """Writes the route name atomically to `<run_dir>/current_route`; returns that file's path."""
    path = os.path.join(run_dir(create=True), "current_route")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(name + "\n")
    os.replace(tmp, path)
    return path


class Loggerd:
    def __init__(self, segment_seconds: float):
        self.services = logged_services()
        # Plain (not conflated) sockets: every message counts. SubMaster would parse each one; we need not.
        self.socks = {s: messaging.sub_sock(s) for s in self.services}
        self.poller = zmq.Poller()
        self.by_zmq = {}
        for sock in self.socks.values():
            self.poller.register(sock.sock, zmq.POLLIN)
            self.by_zmq[sock.sock] = sock
        self.writer = RouteWriter(routes_dir(), self.services, segment_seconds, time.monotonic())
        self.logged = dict.fromkeys(self.services, 0)
        self.dropped = dict.fromkeys(self.services, 0)
        self.stop = False

    def drain(self) -> None:
        for zsock, _ in self.poller.poll(0):
            sock = self.by_zmq[zsock]
            for _ in range(messaging.MAX_DRAIN):
                dat = sock.receive(0)
                if dat is None:
                    break
                if is_one_message(dat):
                    self.writer.log(sock.service, dat)
                    self.logged[sock.service] += 1
                else:
                    self.drop(sock.service, dat)

    def drop(self, service: str, dat: bytes) -> None:
        n = self.dropped[service] = self.dropped[service] + 1
        if n & (n - 1) == 0:  # 1st, 2nd, 4th... drop: visible without flooding the log
            cloudlog.warning("malformed message not logged", extra={"service": service, "bytes": len(dat),
                                                                     "dropped_total": n})

    def run(self) -> None:
        next_t = time.monotonic()
        while not self.stop:
            self.drain()
            now = time.monotonic()
            self.writer.update(now)
            next_t += DT
            if next_t < now:
                next_t = now  # fell behind (disk stall): don't spin to catch up
            time.sleep(max(0.0, next_t - now))
        self.drain()  # what arrived since the last wake-up still belongs to the route
        self.writer.close()
        cloudlog.info("loggerd exiting", extra={"route": self.writer.name, "logged": sum(self.logged.values()),
                                                "dropped": {s: n for s, n in self.dropped.items() if n}})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="records every logged service into rlog/qlog segments")
    default = float(os.environ.get("ROADPILOT_SEGMENT_SECONDS", DEFAULT_SEGMENT_SECONDS))
    p.add_argument("--segment-seconds", type=float, default=default,
                   help=f"segment length (default {DEFAULT_SEGMENT_SECONDS:g}, or $ROADPILOT_SEGMENT_SECONDS)")
    args = p.parse_args(argv)
    if args.segment_seconds <= 0:
        p.error("--segment-seconds must be positive")
    return args


def main(argv: list[str] | None = None) -> None:
    cloudlog_bind(name="loggerd")
    args = parse_args(argv)
    d = Loggerd(args.segment_seconds)

    def on_signal(signum, frame):
        d.stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    current = publish_route_name(d.writer.name)
    cloudlog.info("route started", extra={"route": d.writer.name, "path": d.writer.path,
                                          "segment_seconds": args.segment_seconds})
    d.run()
    with contextlib.suppress(FileNotFoundError):
        os.remove(current)  # a clean exit: no route is being recorded any more (a crash leaves it, naming the route)


if __name__ == "__main__":
    main()
