"""A small deterministic stand-in for card + controlsd + modeld, run as a real process by the lockstep
tests: it reads the car from `can` with opendbc's parser, holds the steering wheel straight and the speed
at the cruise's set speed while the car's cruise is engaged (STEERING_LKA / ACC_CONTROL with opendbc's
packer, within the safety layer's limits), and answers every `can` with one `sendcan` and one `carControl`,
and every `simState` with a `modelV2` carrying that frame's id. Its answers depend only on what it reads.

    python -m tools.sim.tests.fake_stack [--jitter-ms N] [--stall-after K --stall-s S]
      N: sleep a pseudo-random 0..N ms before answering; K, S: after K answers, stop answering for S seconds
      (a stalled card), then read what queued up meanwhile, answer it once and go on
"""

import argparse
import random
import time

import zmq
from opendbc.can import CANPacker, CANParser

from cereal import messaging
from tools.sim.lib.sim_car import PT_DBC


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jitter-ms", type=float, default=0.0)
    ap.add_argument("--stall-after", type=int, default=0)
    ap.add_argument("--stall-s", type=float, default=0.0)
    args = ap.parse_args()
    jitter = random.Random()  # timing noise only: never feeds the answers
    parser = CANParser(PT_DBC, [("STEER_ANGLE_SENSOR", 0), ("WHEEL_SPEEDS", 0), ("PCM_CRUISE", 0),
                                ("PCM_CRUISE_2", 0)], 0)
    packer = CANPacker(PT_DBC)
    can = messaging.sub_sock("can")
    sim_state = messaging.sub_sock("simState")
    pm = messaging.PubMaster(["sendcan", "carControl", "modelV2"])
    poller = zmq.Poller()
    poller.register(can.sock, zmq.POLLIN)
    poller.register(sim_state.sock, zmq.POLLIN)
    torque, frames_seen, n = 0, 0, 0
    while True:
        poller.poll(100)
        while sim_state.receive(0) is not None:
            msg = messaging.new_message("modelV2")
            msg.modelV2.frameId = frames_seen
            frames_seen += 1
            pm.send("modelV2", msg)
        dat = can.receive(0)
        if dat is None:
            continue
        n += 1
        if n == args.stall_after:
            time.sleep(args.stall_s)
        # everything queued meanwhile is read and answered once, as card does (it drains `can` every cycle)
        queued = [dat, *iter(lambda: can.receive(0), None)]
        evs = [messaging.log_from_bytes(d) for d in queued]
        parser.update([(ev.logMonoTime, [(c.address, bytes(c.dat), c.src) for c in ev.can]) for ev in evs])
        engaged = bool(parser.vl["PCM_CRUISE"]["CRUISE_ACTIVE"])
        angle = parser.vl["STEER_ANGLE_SENSOR"]["STEER_ANGLE"] + parser.vl["STEER_ANGLE_SENSOR"]["STEER_FRACTION"]
        v_kph = sum(parser.vl["WHEEL_SPEEDS"][f"WHEEL_SPEED_{w}"] for w in ("FL", "FR", "RL", "RR")) / 4
        if engaged:
            want = max(-300, min(300, int(-40 * angle)))
            torque = max(torque - 10, min(torque + 10, want))
        else:
            torque = 0
        sends = [packer.make_can_msg("STEERING_LKA", 0, {"STEER_REQUEST": int(engaged), "STEER_TORQUE_CMD": torque,
                                                         "SET_ME_1": 1})]
        if n % 3 == 0:
            set_kph = parser.vl["PCM_CRUISE_2"]["SET_SPEED"]
            accel = max(-2.0, min(1.5, 0.3 * (set_kph - v_kph) / 3.6)) if engaged else 0.0
            sends.append(packer.make_can_msg("ACC_CONTROL", 0, {"ACCEL_CMD": accel, "PERMIT_BRAKING": 1,
                                                                "RELEASE_STANDSTILL": 1, "ALLOW_LONG_PRESS": 1}))
        if args.jitter_ms:
            time.sleep(jitter.uniform(0.0, args.jitter_ms) / 1000.0)
        msg = messaging.new_message("sendcan", len(sends))
        for c, (address, d, bus) in zip(msg.sendcan, sends, strict=True):
            c.address, c.dat, c.src = address, d, bus
        pm.send("sendcan", msg)
        cc = messaging.new_message("carControl")
        cc.carControl.enabled = engaged
        pm.send("carControl", cc)


if __name__ == "__main__":
    main()
