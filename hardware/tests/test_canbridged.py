"""canbridged: garbage counted and dropped, every frame gated by the safety layer, and (end to end, with
real processes) no steering or acceleration frame leaving without heartbeat, with the brake pressed or
with cruise off."""

import json
import math
import shutil
import time
import uuid
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opendbc.can import CANPacker
from opendbc.car.can_definitions import CanData
from opendbc.car.toyota import toyotacan

from cereal import messaging
from cereal.can_frames import can_list_message
from common.paths import run_dir
from hardware.can_backends import Backend, RawFrame
from hardware.canbridged import CanBridge, handle_sendcan, safety_from_car_params
from selfdrive.car.car_specific import CarSetup, build_plan
from selfdrive.car.fingerprinting import FingerprintResult
from selfdrive.car.safety import toyota_param
from selfdrive.car.tests.helpers import (
    PT_DBC,
    SyntheticRav4,
    last_status,
    open_gate,
    start,
    stop,
    write_recording,
)

RAV4_PARAM = toyota_param(73, alt_brake=True)  # what card publishes for the RAV4 with its DSU unplugged
STEERING_LKA, ACC_CONTROL = 0x2E4, 0x343


class FakeBackend(Backend):
    def __init__(self):
        self.inbox: list[RawFrame] = []
        self.sent: list[CanData] = []

    def recv(self):
        out, self.inbox = self.inbox, []
        return out

    def send(self, frame):
        self.sent.append(frame)


def steer(packer, torque, request=True):
    return toyotacan.create_steer_command(packer, torque, request)


class TestBridge:
    def test_garbage_is_counted_and_dropped(self):
        b = CanBridge(FakeBackend())
        b.backend.inbox = [RawFrame(0x1D2, bytes(8), 0), RawFrame(0x923, bytes(8), 0), RawFrame(0x123, bytes(12), 1),
                           RawFrame(0x123, b"", 0, is_error=True), RawFrame(0x1D2, bytes(8), 200),
                           RawFrame(0x18DAF110, b"\x01", 0, is_extended=True)]
        out = b.receive(1_000)
        assert out == [CanData(0x1D2, bytes(8), 0), CanData(0x18DAF110, b"\x01", 0)]
        assert b.rx_garbage == {"bad_address": 1, "bad_length": 1, "error_frame": 1, "bad_bus": 1}
        st_ = b.status()
        assert st_["rx"] == 2 and st_["rx_garbage"]["bad_length"] == 1

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.builds(RawFrame, st.integers(-2**31, 2**31), st.binary(max_size=80), st.integers(-5, 300),
                              st.booleans(), st.booleans(), st.booleans(), st.booleans()), max_size=40))
    def test_fuzzed_backend_frames_never_raise(self, raws):
        b = CanBridge(FakeBackend())
        b.set_mode("toyota", RAV4_PARAM)
        b.backend.inbox = list(raws)
        out = b.receive(1_000)
        assert len(out) + sum(b.rx_garbage.values()) == len(raws)
        assert all(0 <= f.src <= 127 and len(f.dat) <= 64 for f in out)

    def test_silent_until_a_mode_is_known(self):
        b = CanBridge(FakeBackend())
        packer = CANPacker(PT_DBC)
        assert b.transmit([steer(packer, 0, False)], 1_000) == 0
        assert b.backend.sent == [] and b.tx_blocked == {"MODE:0x2e4": 1}

    def test_toyota_without_heartbeat_refuses_torque_allows_zero_and_echoes(self, tmp_path):
        with open(tmp_path / "tx.jsonl", "w") as log:
            b = CanBridge(FakeBackend(), tx_log=log)
            b.set_mode("toyota", RAV4_PARAM)
            packer = CANPacker(PT_DBC)
            assert b.transmit([steer(packer, 50), steer(packer, 0, False)], 1_000) == 1
        assert b.tx_blocked == {"HEARTBEAT:0x2e4": 1}
        assert [f.address for f in b.backend.sent] == [STEERING_LKA]
        echo = b.receive(2_000)
        assert [(f.address, f.src) for f in echo] == [(STEERING_LKA, 128)]
        lines = [json.loads(ln) for ln in (tmp_path / "tx.jsonl").read_text().splitlines()]
        assert [(ln["address"], ln["bus"]) for ln in lines] == [(STEERING_LKA, 0)]

    def test_a_brake_pressed_just_now_stops_the_next_frame(self):
        # sendcan is judged after the car's newest frames, not up to a tick later
        car, packer = SyntheticRav4(), CANPacker(PT_DBC)
        b = CanBridge(FakeBackend())
        b.set_mode("toyota", RAV4_PARAM)
        now = 1_000_000  # µs; the whole test runs on this clock

        def step(cruise, brake=False):
            nonlocal now
            now += 10_000
            b.heartbeat(now)
            b.backend.inbox += [RawFrame(a, d, bus) for _, bus, a, d in car.frames(now / 1e6, cruise, brake)]

        for k in range(20):
            step(cruise=k >= 10)
            b.receive(now)
        def send_steer():
            msg = messaging.new_message("sendcan", 1)
            msg.logMonoTime = (now + 1_000) * 1000
            msg.sendcan[0].address, msg.sendcan[0].dat, msg.sendcan[0].src = steer(packer, 10)
            handle_sendcan(b, msg.to_bytes(), msg.logMonoTime)

        step(cruise=True)
        send_steer()
        assert [f.address for f in b.backend.sent] == [STEERING_LKA]
        step(cruise=True, brake=True)  # arrives between two ticks
        send_steer()
        assert len(b.backend.sent) == 1 and b.tx_blocked == {"NOT_ALLOWED:0x2e4": 1}

    def test_unknown_mode_and_bad_param_stay_silent(self):
        b = CanBridge(FakeBackend())
        b.set_mode(77, 0)
        assert b.mode_name == "silent:0"
        b.set_mode("toyota", 0x1_0000)  # wider than opendbc's 16-bit params
        assert b.mode_name == "silent:0"

    def test_without_the_safety_layer_nothing_is_sent(self):
        b = CanBridge(FakeBackend())
        b.safety_mod, b.safety = None, None
        assert b.transmit([(0x412, bytes(8), 0)], 1_000) == 0
        assert b.tx_blocked == {"no_safety:0x412": 1} and b.backend.sent == []

    def test_sendcan_malformed_and_stale(self):
        b = CanBridge(FakeBackend())
        b.set_mode("toyota", RAV4_PARAM)
        handle_sendcan(b, b"\x00" * 24, time.monotonic_ns())
        msg = messaging.new_message("sendcan", 1)
        msg.sendcan[0].address, msg.sendcan[0].dat, msg.sendcan[0].src = 0x412, bytes(8), 0
        dat = msg.to_bytes()
        handle_sendcan(b, dat, msg.logMonoTime + 2_000_000_000)
        assert b.counts["sendcan_bad"] == 1 and b.counts["tx_stale"] == 1 and b.backend.sent == []
        handle_sendcan(b, dat, msg.logMonoTime)
        assert [f.address for f in b.backend.sent] == [0x412]

    def test_safety_mode_from_car_params(self):
        fp = FingerprintResult("TOYOTA_RAV4", "fixed", {0: {0xAA: 8}}, 100)
        cp = build_plan(fp, CarSetup(dsu="absent")).CP
        assert safety_from_car_params(cp.to_bytes()) == (2, RAV4_PARAM)
        assert safety_from_car_params(b"garbage!") is None

    def test_can_message_roundtrip(self):
        frames = [CanData(0x1D2, bytes(8), 0), CanData(0x2E4, b"\x01", 128)]
        ev = messaging.log_from_bytes(can_list_message("can", frames).to_bytes())
        assert [(c.address, bytes(c.dat), c.src) for c in ev.can] == [tuple(f) for f in frames]


class TestDaemonStartup:
    @pytest.mark.parametrize("backend, text", [("nosuchinterface:x", "nosuchinterface"),
                                               ("replay:/nonexistent", "does not exist")])
    def test_unusable_backend_exits_with_a_reason(self, tmp_path, backend, text):
        p = start("hardware.canbridged", "--backend", backend, log=tmp_path / "err")
        assert p.wait(30) == 2
        assert text in (tmp_path / "err").read_text()


@dataclass(frozen=True)
class Scenario:
    name: str
    heartbeat_until: float = math.inf   # replay seconds; -1: never
    cruise_until: float = math.inf
    brake_from: float = math.inf
    frames_until: float | None = math.inf  # actuating frames may leave only before this; None: never


ENGAGE_AT = 0.3
SCENARIOS = [
    Scenario("engaged"),
    Scenario("no_heartbeat", heartbeat_until=-1, frames_until=None),
    Scenario("brake", brake_from=1.0, frames_until=1.0),
    Scenario("cruise_off", cruise_until=1.0, frames_until=1.0),
    Scenario("heartbeat_lost", heartbeat_until=0.5, frames_until=1.5),
]
LEAD_S, REPLAY_S, MARGIN_S = 0.3, 2.2, 0.03


def actuating(address: int, data: bytes) -> bool:
    if address == STEERING_LKA:
        return bool(data[0] & 1) or int.from_bytes(data[1:3], "big", signed=True) != 0
    if address == ACC_CONTROL:
        return int.from_bytes(data[0:2], "big", signed=True) != 0
    return False


def test_end_to_end_no_actuation_without_heartbeat_engagement_or_with_brake(tmp_path, monkeypatch):
    """Five canbridged processes, each replaying a car (built with CANPacker) and gated by the Toyota mode;
    this test is controlsd (carControl heartbeat) and card (sendcan with torque and acceleration)."""
    car = SyntheticRav4()
    recordings = {sc.name: write_recording(tmp_path / sc.name, car.stream(
        REPLAY_S, cruise=lambda t, sc=sc: ENGAGE_AT <= t < sc.cruise_until, brake=lambda t, sc=sc: t >= sc.brake_from))
        for sc in SCENARIOS}
    gate = tmp_path / "gate"
    runs = []
    try:
        for sc in SCENARIOS:
            prefix = f"t{uuid.uuid4().hex[:10]}"
            monkeypatch.setenv("ROADPILOT_PREFIX", prefix)
            pm = messaging.PubMaster(["sendcan", "carControl"])
            can_sock = messaging.sub_sock("can")
            proc = start("hardware.canbridged", "--backend", f"replay:{recordings[sc.name]}?dbc0={PT_DBC}&gate={gate}",
                         "--safety", f"toyota:{RAV4_PARAM}", "--tx-log", str(tmp_path / f"{sc.name}.tx"),
                         log=tmp_path / f"{sc.name}.err", env={"ROADPILOT_PREFIX": prefix})
            runs.append((sc, pm, proc, run_dir(), can_sock))
        deadline = time.monotonic() + 30
        for sc, _, _, _, can_sock in runs:  # every bridge up (and heartbeats flowing) before the car starts
            while can_sock.receive(10) is None:
                for sc_, pm, *_ in runs:
                    if sc_.heartbeat_until > 0:
                        pm.send("carControl", messaging.new_message("carControl"))
                assert time.monotonic() < deadline, f"{sc.name}: canbridged not up"
        t0 = open_gate(gate, LEAD_S)

        packer = CANPacker(PT_DBC)
        published = []  # (replay time, address) of the actuating frames offered
        k, loop_start = 0, time.monotonic()
        while (now := time.monotonic()) < t0 + REPLAY_S:
            phase = k % 18
            frames = [steer(packer, 10 * min(phase, 18 - phase))]
            if k % 3 == 0:
                frames.append(toyotacan.create_accel_command(packer, 0.5, False, True, False, True, 1, False, 0))
            msg = messaging.new_message("sendcan", len(frames))
            for c, (a, d, b) in zip(msg.sendcan, frames, strict=True):
                c.address, c.dat, c.src = a, d, b
            dat = msg.to_bytes()
            published += [(now - t0, a) for a, _, _ in frames]
            for sc, pm, *_ in runs:
                pm.send("sendcan", dat)
                if now - t0 < sc.heartbeat_until:
                    pm.send("carControl", messaging.new_message("carControl"))
            k += 1
            time.sleep(max(0.0, loop_start + k * 0.01 - time.monotonic()))
    finally:
        stop(*(proc for _, _, proc, _, _ in runs))
        for _, pm, _, rd, can_sock in runs:
            pm.close()
            can_sock.close()
            shutil.rmtree(rd, ignore_errors=True)

    for sc, *_ in runs:
        tx_path = tmp_path / f"{sc.name}.tx"
        sent = [json.loads(ln) for ln in tx_path.read_text().splitlines()] if tx_path.exists() else []
        acts = [(s["t_us"] / 1e6 - t0, s["address"]) for s in sent if actuating(s["address"], bytes.fromhex(s["data"]))]
        status = last_status(tmp_path / f"{sc.name}.err")
        assert len(acts) == len(sent), sc.name  # the test sends nothing but actuation
        if sc.frames_until is None:
            assert acts == [], f"{sc.name}: {acts[:5]}"
        else:
            assert all(ENGAGE_AT <= t < sc.frames_until + MARGIN_S for t, _ in acts), f"{sc.name}: {acts[-5:]}"
            offered = [a for t, a in published if ENGAGE_AT + 0.1 <= t < min(sc.frames_until, REPLAY_S) - 0.05]
            got = [a for t, a in acts if ENGAGE_AT + 0.1 <= t < min(sc.frames_until, REPLAY_S) - 0.05]
            assert {STEERING_LKA, ACC_CONTROL} <= set(got), f"{sc.name}: sane frames must leave while engaged"
            assert len(got) >= 0.8 * len(offered), f"{sc.name}: {len(got)} of {len(offered)} left"
        if sc.frames_until != math.inf:
            assert any(k.startswith(("NOT_ALLOWED:", "HEARTBEAT:")) for k in status["tx_blocked"]), status
        assert status["rx_garbage"] == {} and status["rx"] > 0, status


class TestAdapterState:
    def test_a_latched_relay_malfunction_is_said_and_every_frame_refused(self):
        b = CanBridge(FakeBackend())
        b.set_mode("toyota", RAV4_PARAM)
        packer = CANPacker(PT_DBC)
        st_ = b.state_message("enabled").adapterState
        assert (st_.safetyMode, st_.car, st_.relayMalfunction) == (f"toyota:{RAV4_PARAM}", "enabled", False)
        # the stock camera's STEERING_LKA on bus 0: the harness relay did not cut it off (after opendbc's 1 s
        # allowance for the relay to switch)
        for t in range(300):
            b.backend.inbox = [RawFrame(*steer(packer, 0, False))]
            b.receive(1_000 + t * 10_000)
        assert b.transmit([steer(packer, 0, False)], 3_100_000) == 0
        st_ = b.state_message("enabled").adapterState
        assert st_.relayMalfunction and not st_.controlsAllowed
        assert (st_.txSent, st_.txBlocked) == (0, 1) and b.tx_blocked == {"RELAY:0x2e4": 1}

    def test_the_daemon_publishes_it(self, tmp_path):
        # a recorded car whose stock LKA frames leak onto bus 0: canbridged tells the stack, twice a second
        packer = CANPacker(PT_DBC)
        addr, dat, _ = steer(packer, 0, False)
        rec = write_recording(tmp_path / "rec", [(k * 0.01, 0, addr, dat) for k in range(800)])
        states = messaging.sub_sock("adapterState")
        proc = start("hardware.canbridged", "--backend", f"replay:{rec}?dbc0={PT_DBC}", "--safety",
                     f"toyota:{RAV4_PARAM}", log=tmp_path / "err")
        try:
            seen = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not (seen and seen[-1].relayMalfunction):
                dat_ = states.receive(100)
                if dat_ is not None:
                    seen.append(messaging.log_from_bytes(dat_).adapterState)
                assert proc.poll() is None, (tmp_path / "err").read_text()[-2000:]
        finally:
            stop(proc)
            states.close()
        assert seen and seen[-1].relayMalfunction, [s.to_dict() for s in seen[-3:]]
        assert seen[0].safetyMode == f"toyota:{RAV4_PARAM}" and seen[0].car == "forced mode"
