"""card: the car interface daemon, on opendbc's car ports.

Identifies the car (FPv1 fingerprint from `can`, or `--car` / the CarOverride param), publishes
`carParams` (also the CarParams param) at start, every 50 s and on change, then runs at the pace of
`can` (100 Hz): `carState` from the frames, `liveTracks` (the radar's tracks, 20 Hz) when the car's radar
completes a cycle, and `carControl` from controlsd turned into `sendcan`
through the car port, with `carOutput` saying what was sent. When `can` stops coming, carState keeps
coming at 100 Hz from card's own clock, with canValid/canTimeout false/true instead of stale values.
"""

import argparse
import sys
import time

from opendbc.car.carlog import carlog

from cereal import messaging
from common.params import Params
from common.realtime import DT_CTRL, PRIO_CTRL_HIGH, Ratekeeper, input_wait_s, set_realtime_priority
from common.swaglog import cloudlog, cloudlog_bind
from selfdrive.car.car_logic import CarLogic
from selfdrive.car.car_specific import CarPlan, CarSetup, build_plan
from selfdrive.car.fingerprinting import Fingerprinter

LAG_LOG_S = 0.05
CAR_PARAMS_PERIOD_S = 50.0  # 0.02 Hz, the services table's contract
CAN_GRACE_S = 1.5 * DT_CTRL  # `can` this late after the last one: update from our own clock, at 100 Hz (input_wait_s)
FINGERPRINT_NO_CAN_S = 5.0  # a forced platform does not wait longer than this for a first frame
SUBSCRIBES = ("can", "carControl")
PUBLISHES = ("carState", "carParams", "carOutput", "sendcan", "liveTracks")


def frames_of(msg) -> list[tuple[int, bytes, int]]:
    return [(c.address, bytes(c.dat), c.src) for c in msg.can]


def identify(can_sock, forced: str | None, setup: CarSetup) -> CarPlan:
    fp = Fingerprinter(forced)
    cloudlog.info("identifying the car from CAN", extra={"forced": forced, "dsu": setup.dsu,
                                                          "buses": sorted(setup.buses) if setup.buses else "auto"})
    started = time.monotonic()
    last_wait_log = started
    while not fp.done:
        msg = messaging.recv_one(can_sock, 100)
        now = time.monotonic()
        if msg is not None:
            fp.add(frames_of(msg))
        if forced is not None and fp.frames == 0 and now - started > FINGERPRINT_NO_CAN_S:
            break  # nothing to learn the wiring from: the plan says so and expects every bus
        if fp.frames == 0 and now - last_wait_log > 5.0:
            cloudlog.warning("waiting for CAN to fingerprint the car", extra={"frames": fp.frames})
            last_wait_log = now
    plan = build_plan(fp.result(), setup)
    for note in plan.notes:
        cloudlog.warning(f"car setup: {note}")
    return plan


class Card:
    def __init__(self, plan: CarPlan, can_sock, params: Params | None):
        self.logic = CarLogic(plan)
        self.can_sock = can_sock
        self.params = params
        self.sm = messaging.SubMaster([s for s in SUBSCRIBES if s != "can"])  # `can` has its own socket: it paces us
        self.pm = messaging.PubMaster(list(PUBLISHES))
        self.cp_bytes = plan.CP.to_bytes()
        self.cp_sent_at = -CAR_PARAMS_PERIOD_S
        self.can_grace_s = input_wait_s(CAN_GRACE_S)
        self.can_deadline = time.monotonic() + self.can_grace_s
        self.last_can: tuple[int, int] | None = None  # (the newest `can`'s logMonoTime, our clock when it came)
        if params is not None:
            params.put("CarParams", self.cp_bytes)
            params.put("CarName", plan.CP.carFingerprint)

    def update(self) -> None:
        wait_ms = max(0, int((self.can_deadline - time.monotonic()) * 1000))
        first = messaging.recv_one(self.can_sock, wait_ms)
        msgs = ([first] if first is not None else []) + messaging.drain_sock(self.can_sock)
        now = time.monotonic()
        if msgs:
            packets = [(m.logMonoTime, frames_of(m)) for m in msgs]
            self.can_deadline = now + self.can_grace_s
            self.last_can = (msgs[-1].logMonoTime, time.monotonic_ns())
        else:
            # silence is news too: the parsers time out. It is measured on our clock but stamped on the clock of
            # `can`'s own stamps, which need not be ours (the lockstep simulator's bus clock, a replayed route):
            # a stamp from another clock would look like a long gap (or time running backwards) to the parsers
            mono = time.monotonic_ns()
            stamp = mono if self.last_can is None else self.last_can[0] + mono - self.last_can[1]
            packets = [(stamp, [])]
            self.can_deadline = max(self.can_deadline + DT_CTRL, now)
        CS = self.logic.update(packets)
        # a `can` message flagged invalid by canbridged (adapter trouble) taints this cycle
        CS.canValid = CS.canValid and all(m.valid for m in msgs)
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
        if not self.sm.alive["carControl"]:
            return  # no controlsd: send nothing (canbridged's safety layer would refuse it anyway)
        actuators, sends = self.logic.control(self.sm["carControl"], time.monotonic_ns())
        out = messaging.new_message("carOutput")
        out.carOutput.actuatorsOutput = actuators
        self.pm.send("carOutput", out)
        sc = messaging.new_message("sendcan", len(sends), valid=self.sm.valid["carControl"])
        for c, (address, dat, bus) in zip(sc.sendcan, sends, strict=True):
            c.address, c.dat, c.src = address, dat, bus
        self.pm.send("sendcan", sc)

    def publish_params(self) -> None:
        now = time.monotonic()
        if now - self.cp_sent_at >= CAR_PARAMS_PERIOD_S:
            msg = messaging.new_message("carParams")
            msg.carParams = self.logic.CP
            self.pm.send("carParams", msg)
            self.cp_sent_at = now

    def run(self) -> None:
        rk = Ratekeeper(1.0 / DT_CTRL, print_delay_threshold=LAG_LOG_S)  # logs "loop lagging" on stalls
        while True:
            self.update()
            self.control()
            self.publish_params()
            rk.monitor_time()


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
    ap.add_argument("--car", default=None, help="force the platform, e.g. TOYOTA_RAV4 (default: CarOverride param)")
    ap.add_argument("--dsu", choices=("auto", "present", "absent"), default="auto",
                    help="Toyota TSS-P: is the DSU plugged in? auto: from the bus (PRE_COLLISION/ACC_CONTROL seen)")
    ap.add_argument("--buses", type=parse_buses, default=None,
                    help="buses the adapter connects, e.g. 0,1 (default: those that carry frames at start)")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)

    params = Params()
    forced = args.car or params.get("CarOverride") or None
    set_realtime_priority(PRIO_CTRL_HIGH)
    can_sock = messaging.sub_sock("can")
    try:
        plan = identify(can_sock, forced, CarSetup(dsu=args.dsu, buses=args.buses))
    except ValueError as e:
        cloudlog.error(f"card: {e}")
        sys.exit(2)
    Card(plan, can_sock, params).run()


if __name__ == "__main__":
    main()
