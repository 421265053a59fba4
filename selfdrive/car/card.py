"""card: the car interface daemon, on opendbc's car ports.

Identifies the car as opendbc does (VIN and ECU firmware queried through canbridged's adapter, then the CAN
fingerprint: fingerprinting.py), or takes `--car` / $ROADPILOT_CAR for this run, publishes `carParams`
(also the CarParams param, with how the car was identified) at start, every 50 s and on change, then (a forced
platform) answers the `can` messages its fingerprint window watched, one carState each, and runs at the pace of
`can` (100 Hz): `carState` from the frames, `liveTracks` (the radar's tracks, 20 Hz) when the car's radar
completes a cycle, and `carControl` from controlsd turned into `sendcan`
through the car port, with `carOutput` saying what was sent. When `can` stops coming, carState keeps
coming at 100 Hz from card's own clock, with canValid/canTimeout false/true instead of stale values.

A car that is not recognised is dashcam mode (carParams.dashcamOnly): carState keeps its 100 Hz pace for the
stack but says canValid false (there is no car port to read it with), and card never sends a frame.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace

from opendbc.car.can_definitions import CanData
from opendbc.car.carlog import carlog
from opendbc.car.structs import CarParams

from cereal import messaging
from cereal.can_frames import can_list_message, frames_of
from common import clock
from common.params import Params
from common.realtime import DT_CTRL, PRIO_CTRL_HIGH, Ratekeeper, set_realtime_priority
from common.swaglog import cloudlog, cloudlog_bind
from selfdrive.car.car_logic import CarLogic
from selfdrive.car.car_params import car_params_from_bytes
from selfdrive.car.car_specific import CarPlan, CarSetup, build_plan
from selfdrive.car.fingerprinting import SOURCES, Fingerprinter, identify_by_query
from selfdrive.manager.process import MANAGER_PID_ENV

LAG_LOG_S = 0.05
CAR_PARAMS_PERIOD_S = 50.0  # 0.02 Hz, the services table's contract
# while the CarParams param could not be stored (a full disk), carParams is the only way daemons that start later
# (a restarted controlsd) learn the car: wait_car_params takes either
CAR_PARAMS_UNSTORED_PERIOD_S = 1.0
CAN_GRACE_S = 1.5 * DT_CTRL  # `can` this late after the last one: update from our own clock, at 100 Hz (common.clock)
CAN_WAIT_FIRST_LOG_S = 1.0  # a bus silent this long is said at once (a car's bus speaks within ms of waking)...
CAN_WAIT_LOG_S = 5.0        # ...then again this often while card waits for it
FORCED_CAR_ENV = "ROADPILOT_CAR"  # `roadpilot device --car`: this run only, never stored
CAN_WAIT_MS = 20           # identification: a `can` this late counts as a silent bus (an empty message)
SUBSCRIBES = ("can", "carControl")
PUBLISHES = ("carState", "carParams", "carOutput", "sendcan", "liveTracks")


def wait_for_bus(can_sock, forced: str | None) -> list:
    """The first `can` messages that carry a frame: a car that is off (or an adapter up before the car wakes)
    has nothing to identify. A forced platform waits too, as long as it takes: its wiring (which buses are
    connected, whether a Toyota's DSU is plugged in) is read from the bus, and a plan guessed before the car woke
    would expect what the car never sends (its carState never valid, nothing ever engages)."""
    next_log = time.monotonic() + CAN_WAIT_FIRST_LOG_S
    what = "read the car's wiring" if forced is not None else "identify the car"
    while True:
        msgs = [m for m in [messaging.recv_one(can_sock, 100), *messaging.drain_sock(can_sock)] if m is not None]
        if any(len(m.can) for m in msgs):
            return msgs
        now = time.monotonic()
        if now >= next_log:
            cloudlog.warning(f"waiting for CAN to {what} (is the car on?)")
            next_log = now + CAN_WAIT_LOG_S


class QueryBus:
    """opendbc's can_recv/can_send over card's sockets: `can` in, `sendcan` out (canbridged's adapter)."""

    def __init__(self, can_sock, pm: messaging.PubMaster, first: list):
        self.can_sock = can_sock
        self.pm = pm
        self.backlog = first
        self.sent = 0

    def recv(self, wait_for_one: bool = False) -> list[list[CanData]]:
        msgs, self.backlog = self.backlog, []
        if wait_for_one and not msgs:
            first = messaging.recv_one(self.can_sock, CAN_WAIT_MS)
            # a silent bus (or a stalled bridge) is an empty message, so opendbc's windows end in bounded time
            msgs = [first] if first is not None else [None]
        msgs += messaging.drain_sock(self.can_sock)
        return [[] if m is None else frames_of(m.can) for m in msgs]

    def send(self, msgs: list[CanData]) -> None:
        self.pm.send("sendcan", can_list_message("sendcan", msgs))
        self.sent += len(msgs)


def identify(can_sock, pm: messaging.PubMaster, forced: str | None, setup: CarSetup,
             cached: CarParams | None = None) -> tuple[CarPlan, list]:
    """The car's plan: a forced platform, or what opendbc's identification finds (firmware, then CAN); and, for a
    forced platform, the `can` messages its window watched (card answers them too: a replay loses no carState)."""
    finger = Fingerprinter(forced) if forced is not None else None  # an unknown name fails before any waiting
    cloudlog.info("identifying the car", extra={"forced": forced, "dsu": setup.dsu,
                                                "buses": sorted(setup.buses) if setup.buses else "auto"})
    first = wait_for_bus(can_sock, forced)
    bus_up = time.monotonic()
    window: list = []
    if finger is None:
        bus = QueryBus(can_sock, pm, first)
        fp = identify_by_query(bus.recv, bus.send, cached)
        cloudlog.info("diagnostic query done", extra={"frames_sent": bus.sent, "ecus": len(fp.car_fw)})
    else:
        window = list(first)
        for m in first:
            finger.add(frames_of(m.can))
        while not finger.done:
            msg = messaging.recv_one(can_sock, 100)
            if msg is not None:
                finger.add(frames_of(msg.can))
                window.append(msg)
        fp = replace(finger.result(), seconds=time.monotonic() - bus_up)  # as opendbc's flow counts it: from the bus
    plan = build_plan(fp, setup)
    for note in plan.notes:
        cloudlog.warning(f"car setup: {note}")
    cloudlog.info("car identified" if fp.candidate is not None else "car not recognised: dashcam mode",
                  extra={"car": plan.CP.carFingerprint, "how": SOURCES[fp.source], "vin": fp.vin,
                         "ecus": len(fp.car_fw), "seconds": round(fp.seconds, 3)})
    return plan, window


class Card:
    def __init__(self, plan: CarPlan, can_sock, params: Params | None, pm: messaging.PubMaster | None = None):
        self.logic = CarLogic(plan)
        self.can_sock = can_sock
        self.params = params
        self.sm = messaging.SubMaster([s for s in SUBSCRIBES if s != "can"])  # `can` has its own socket: it paces us
        self.pm = pm or messaging.PubMaster(list(PUBLISHES))
        self.cp_bytes = plan.CP.to_bytes()
        self.dashcam = bool(plan.CP.dashcamOnly)  # not recognised: read nothing as the car, send nothing
        self.cp_sent_at = -CAR_PARAMS_PERIOD_S
        self.cp_period = CAR_PARAMS_PERIOD_S
        self.can_grace_s = CAN_GRACE_S
        self.can_deadline = clock.monotonic() + self.can_grace_s
        self.last_can: tuple[int, int] | None = None  # (the newest `can`'s logMonoTime, our clock when it came)
        if params is not None:
            try:
                params.put("CarParams", self.cp_bytes)
            except OSError as e:  # a full disk: the car is still ours to read (carParams goes out on its service)
                cloudlog.error("CarParams not stored: carParams goes out every second", extra={"error": str(e)})
                self.cp_period = CAR_PARAMS_UNSTORED_PERIOD_S

    def catch_up(self, window: list) -> None:
        """One carState (and liveTracks) per `can` message the identification window watched, in order, as if they
        had come now: the first carState answers the first frame (a replayed drive starts at its start)."""
        for m in window:
            self.last_can = (m.logMonoTime, clock.monotonic_ns())
            self.publish_state([m], [(m.logMonoTime, frames_of(m.can))])
        self.can_deadline = clock.monotonic() + self.can_grace_s

    def update(self) -> None:
        # on our clock: under the lockstep simulator a world waiting for our answer stands still, `can` is never late
        first = clock.wait(lambda ms: messaging.recv_one(self.can_sock, ms), self.can_deadline - clock.monotonic())
        msgs = ([first] if first is not None else []) + messaging.drain_sock(self.can_sock)
        now = clock.monotonic()
        if msgs:
            packets = [(m.logMonoTime, frames_of(m.can)) for m in msgs]
            self.can_deadline = now + self.can_grace_s
            self.last_can = (msgs[-1].logMonoTime, clock.monotonic_ns())
        else:
            # silence is news too: the parsers time out. It is measured on our clock but stamped on the clock of
            # `can`'s own stamps, which need not be ours (the lockstep simulator's bus clock, a replayed route):
            # a stamp from another clock would look like a long gap (or time running backwards) to the parsers
            mono = clock.monotonic_ns()
            stamp = mono if self.last_can is None else self.last_can[0] + mono - self.last_can[1]
            packets = [(stamp, [])]
            self.can_deadline = max(self.can_deadline + DT_CTRL, now)
        self.publish_state(msgs, packets)

    def publish_state(self, msgs: list, packets: list) -> None:
        """carState (and liveTracks when the radar completed a cycle) from `packets`, the frames of `msgs`."""
        CS = self.logic.update(packets)
        # a `can` message flagged invalid by canbridged (adapter trouble) taints this cycle
        CS.canValid = CS.canValid and all(m.valid for m in msgs) and not self.dashcam
        msg = messaging.new_message("carState", valid=CS.canValid)
        msg.carState = CS
        self.pm.send("carState", msg)
        RD = self.logic.tracks
        if RD is not None:
            # invalid when the radar's CAN is (not connected, timed out, bad frames) or the radar reports a fault
            err = RD.errors
            ok = not (err.canError or err.radarFault or err.wrongConfig or err.radarUnavailableTemporary)
            lt = messaging.new_message("liveTracks", valid=ok and all(m.valid for m in msgs))
            lt.liveTracks = RD
            self.pm.send("liveTracks", lt)

    def control(self) -> None:
        self.sm.update(0)
        if self.dashcam or not self.sm.alive["carControl"]:
            return  # no controlsd: send nothing (canbridged's safety layer would refuse it anyway)
        actuators, sends = self.logic.control(self.sm["carControl"], clock.monotonic_ns())
        out = messaging.new_message("carOutput")
        out.carOutput.actuatorsOutput = actuators
        self.pm.send("carOutput", out)
        self.pm.send("sendcan", can_list_message("sendcan", sends, valid=self.sm.valid["carControl"]))

    def publish_params(self) -> None:
        now = clock.monotonic()
        if now - self.cp_sent_at >= self.cp_period:
            msg = messaging.new_message("carParams")
            msg.carParams = self.logic.CP
            self.pm.send("carParams", msg)
            self.cp_sent_at = now

    def run(self, window: list = ()) -> None:
        self.publish_params()
        self.catch_up(list(window))
        rk = Ratekeeper(1.0 / DT_CTRL, print_delay_threshold=LAG_LOG_S)  # logs "loop lagging" on stalls
        while True:
            self.update()
            self.control()
            self.publish_params()
            rk.monitor_time()


def run_cache(params: Params) -> CarParams | None:
    """This run's CarParams, when card identified the car before (a restarted card, while canbridged keeps the
    car's safety mode, which refuses diagnostic queries): opendbc reuses its VIN and firmware instead of querying
    the car again. Only under the manager, which clears the param at every start, so nothing of another run (the
    simulator's car, another car) is ever reused; and the bus must still agree before anything is sent."""
    raw = params.get("CarParams") if os.environ.get(MANAGER_PID_ENV) else None
    if not raw:
        return None
    try:
        cp = car_params_from_bytes(raw)
    except ValueError as e:  # corrupt bytes: identify afresh
        cloudlog.warning("unreadable CarParams param: identifying afresh", extra={"error": str(e)[:200]})
        return None
    return None if cp.dashcamOnly else cp


def parse_buses(s: str) -> frozenset[int]:
    try:
        return frozenset(int(b) for b in s.split(",") if b != "")
    except ValueError:
        raise argparse.ArgumentTypeError(f"buses are numbers separated by commas, got {s!r}") from None


def main(argv: list[str] | None = None) -> None:
    cloudlog_bind(name="card")
    # opendbc's own messages go where ours go, except its per-message CAN warnings: CarLogic names those itself
    carlog.handlers = cloudlog.handlers
    carlog.addFilter(lambda r: not r.getMessage().startswith("CANParser:"))
    ap = argparse.ArgumentParser(prog="card", description=__doc__.splitlines()[0])
    ap.add_argument("--car", default=os.environ.get(FORCED_CAR_ENV) or None,
                    help=f"force the platform for this run, e.g. TOYOTA_RAV4 (default: ${FORCED_CAR_ENV}, else "
                         "identify it: firmware query, then CAN fingerprint)")
    ap.add_argument("--dsu", choices=("auto", "present", "absent"), default="auto",
                    help="Toyota TSS-P: is the DSU plugged in? auto: from the bus (PRE_COLLISION/ACC_CONTROL seen)")
    ap.add_argument("--buses", type=parse_buses, default=None,
                    help="buses the adapter connects, e.g. 0,1 (default: those that carry frames at start)")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)

    params = Params()
    set_realtime_priority(PRIO_CTRL_HIGH)
    can_sock = messaging.sub_sock("can")
    pm = messaging.PubMaster(list(PUBLISHES))
    try:
        plan, window = identify(can_sock, pm, args.car, CarSetup(dsu=args.dsu, buses=args.buses), run_cache(params))
    except ValueError as e:
        cloudlog.error(f"card: {e}")
        sys.exit(2)
    Card(plan, can_sock, params, pm).run(window)


if __name__ == "__main__":
    main()
