"""loggerd: records every logged service into a route of rlog/qlog segments (see route_writer.py).

One loop at 20 Hz drains every socket that has data and hands the raw bytes to the RouteWriter. A
message is written exactly as received, never parsed: loggerd checks only its framing header and its
union tag (both read straight from the bytes, cheap), so one bad message can never make the rest of a
file unsplittable and a message published on the wrong socket is never recorded as that service.
Refused messages are counted (loggerState) and logged on the 1st, 2nd, 4th... of each kind.

The route is the run's: the manager reserves its name and passes it in ROADPILOT_ROUTE, so a restarted
loggerd continues it (route_writer.py). Without it, each start records a fresh route. The name also
goes to `<run_dir>/current_route` (and the log) so other processes and tests find it; a clean exit
removes that file.
Latched services (carParams) start every segment (route_writer.py). Their newest message is also kept in the run
directory (`latched.<route>.<service>`), so a restarted loggerd starts its first segment with them too instead of
waiting up to 50 s for the producer's next one.
A full or failing disk stops writing, never loggerd: it keeps draining, counts what it cannot write,
says so in loggerState (at 1 Hz, and at once when `writing` changes) and retries with a new segment.
SIGTERM/SIGINT flush and close the files; SIGKILL loses at most the last flush period (~0.5 s).
"""

import argparse
import contextlib
import os
import signal
import time

import zmq

from cereal import messaging
from cereal.services import SERVICES, Service
from common.paths import routes_dir, run_dir
from common.swaglog import cloudlog, cloudlog_bind, log_due
from selfdrive.loggerd.framing import MAX_MESSAGE_BYTES, event_which, is_one_message
from selfdrive.loggerd.route_writer import ROUTE_ENV, RouteWriter, check_route_name

PUBLISHES = ("loggerState",)
DT = 0.05                 # loop period: batches ~5 messages per 100 Hz service per wake-up, keeps CPU low
DEFAULT_SEGMENT_SECONDS = 60.0
STATE_PERIOD = 1.0 / SERVICES["loggerState"].frequency
# why a message was not recorded -> what the log says (1st, 2nd, 4th... of each)
DROP_REASONS = {
    "malformed": "malformed message not logged",
    "wrongService": "message on the wrong service not logged",
    "notWriting": "message not logged: writing stopped",
}


def logged_services() -> dict:
    return {s: v for s, v in SERVICES.items() if v.should_log}


def latched_path(route: str, service: str) -> str:
    return os.path.join(run_dir(), f"latched.{route}.{service}")


def load_latched(route: str, services: dict[str, Service]) -> dict[str, bytes]:
    """What an earlier loggerd of this run kept of `route`'s latched services (save_latched): each one message of
    its service, or left out."""
    out = {}
    for s in (s for s, v in services.items() if v.latched):
        try:
            with open(latched_path(route, s), "rb") as f:
                dat = f.read(MAX_MESSAGE_BYTES + 1)
        except OSError:  # none kept (a fresh route, or the first loggerd never saw one)
            continue
        if is_one_message(dat) and event_which(dat) == s:
            out[s] = dat
    return out


def save_latched(route: str, service: str, dat: bytes) -> None:
    path = latched_path(route, service)
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(dat)
        os.replace(tmp, path)  # a loggerd killed mid-write leaves the previous one whole
    except OSError as e:  # the run directory is full: a restart would wait for the producer's next one, no worse
        cloudlog.warning("latched message not kept for a restart", extra={"service": service, "error": str(e)})


def publish_route_name(name: str) -> str:
    """Writes the route name atomically to `<run_dir>/current_route`; returns that file's path."""
    path = os.path.join(run_dir(create=True), "current_route")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(name + "\n")
    os.replace(tmp, path)
    return path


class Loggerd:
    def __init__(self, segment_seconds: float, route: str | None = None):
        self.services = logged_services()
        self.pm = messaging.PubMaster(list(PUBLISHES))
        # Plain (not conflated) sockets: every message counts. SubMaster would parse each one; we need not.
        self.socks = {s: messaging.sub_sock(s) for s in self.services}
        self.poller = zmq.Poller()
        self.by_zmq = {}
        for sock in self.socks.values():
            self.poller.register(sock.sock, zmq.POLLIN)
            self.by_zmq[sock.sock] = sock
        # a fresh route (no name) has nothing kept; a named one may be this run's, continued after a restart
        latched = load_latched(route, self.services) if route is not None else None
        self.writer = RouteWriter(routes_dir(), self.services, segment_seconds, time.monotonic(), name=route,
                                  latched=latched)
        self.accepted = 0
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        self.state_writing: bool | None = None   # `writing` as last published
        self.next_state = 0.0
        self.stop = False

    def drain(self) -> None:
        for zsock, _ in self.poller.poll(0):
            sock = self.by_zmq[zsock]
            for _ in range(messaging.MAX_DRAIN):
                dat = sock.receive(0)
                if dat is None:
                    break
                self.record(sock.service, dat)

    def record(self, service: str, dat: bytes) -> None:
        if not is_one_message(dat):
            self.drop("malformed", service, dat)
            return
        which = event_which(dat)
        if which != service:
            self.drop("malformed" if which is None else "wrongService", service, dat, which)
            return
        if service in self.writer.latched_services:
            save_latched(self.writer.name, service, dat)
        if self.writer.log(service, dat):
            self.accepted += 1
        else:
            self.drop("notWriting", service, dat)

    def drop(self, reason: str, service: str, dat: bytes, which: str | None = None) -> None:
        n = self.dropped[reason] = self.dropped[reason] + 1
        if log_due(n):
            extra = {"service": service, "bytes": len(dat), "dropped_total": n}
            if which is not None:
                extra["which"] = which
            cloudlog.warning(DROP_REASONS[reason], extra=extra)

    def publish_state(self, now: float) -> None:
        w = self.writer
        if w.writing == self.state_writing and now < self.next_state:
            return
        msg = messaging.new_message("loggerState")
        ls = msg.loggerState
        ls.route, ls.segment, ls.writing, ls.error = w.name, w.segment, w.writing, w.error
        ls.writeErrors, ls.bytesWritten = w.write_errors, w.bytes_written
        ls.logged = self.accepted - w.lost  # a message in a frame that failed to write was not recorded after all
        ls.dropped = sum(self.dropped.values()) + w.lost
        ls.wrongService = self.dropped["wrongService"]
        self.pm.send("loggerState", msg)
        self.state_writing, self.next_state = w.writing, now + STATE_PERIOD

    def run(self) -> None:
        next_t = time.monotonic()
        while not self.stop:
            self.drain()
            now = time.monotonic()
            self.writer.update(now)
            self.publish_state(now)
            next_t += DT
            if next_t < now:
                next_t = now  # fell behind (disk stall): don't spin to catch up
            time.sleep(max(0.0, next_t - now))
        self.drain()  # what arrived since the last wake-up still belongs to the route
        self.writer.close()
        self.pm.close()
        cloudlog.info("loggerd exiting", extra={"route": self.writer.name, "logged": self.accepted - self.writer.lost,
                                                "lost_to_write_errors": self.writer.lost,
                                                "dropped": {r: n for r, n in self.dropped.items() if n}})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="records every logged service into rlog/qlog segments")
    default = float(os.environ.get("ROADPILOT_SEGMENT_SECONDS", DEFAULT_SEGMENT_SECONDS))
    p.add_argument("--segment-seconds", type=float, default=default,
                   help=f"segment length (default {DEFAULT_SEGMENT_SECONDS:g}, or $ROADPILOT_SEGMENT_SECONDS)")
    p.add_argument("--route", default=os.environ.get(ROUTE_ENV) or None,
                   help=f"record into this route, continuing it if it has segments (default ${ROUTE_ENV}; "
                        "none: a fresh route)")
    args = p.parse_args(argv)
    if args.segment_seconds <= 0:
        p.error("--segment-seconds must be positive")
    if args.route is not None:
        try:
            check_route_name(args.route)
        except ValueError as e:
            p.error(f"--route / ${ROUTE_ENV}: {e}")
    return args


def main(argv: list[str] | None = None) -> None:
    cloudlog_bind(name="loggerd")
    args = parse_args(argv)
    d = Loggerd(args.segment_seconds, args.route)

    def on_signal(signum, frame):
        d.stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    current = publish_route_name(d.writer.name)
    cloudlog.info("route started", extra={"route": d.writer.name, "path": d.writer.path, "segment": d.writer.segment,
                                          "segment_seconds": args.segment_seconds})
    d.run()
    with contextlib.suppress(FileNotFoundError):
        os.remove(current)  # a clean exit: no route is being recorded any more (a crash leaves it, naming the route)


if __name__ == "__main__":
    main()
