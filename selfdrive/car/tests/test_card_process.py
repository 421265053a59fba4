"""card and canbridged as real processes: the real RAV4 frames through the replay backend reproduce the
data set's speed and steering angle in carState; card's carParams set canbridged's safety mode; and the
safety layer, not card or controlsd, is what keeps torque off the car once the brake is pressed."""

import json
import time

import numpy as np
import pytest

from cereal import car, messaging
from common.params import Params
from selfdrive.car.fingerprinting import is_diagnostic
from selfdrive.car.tests.helpers import (
    DATA,
    PT_DBC,
    RAW,
    REPLAY_DBCS,
    SKIP_REASON,
    SyntheticRav4,
    have_data,
    last_status,
    load_npy,
    open_gate,
    start,
    stop,
    wait_for_line,
    write_recording,
)

LEAD_S = 0.2  # both daemons are up when the gate opens


def wait_up(sock, deadline: float, what: str) -> None:
    while sock.receive(20) is None:
        assert time.monotonic() < deadline, f"{what} not up in time"


def forced_rav4_on_recording(tmp_path, rec, *bridge_args: str):
    """card forced to TOYOTA_RAV4 and canbridged replaying `rec` once the gate opens (open_gate); both up."""
    card = start("selfdrive.car.card", "--car", "TOYOTA_RAV4", log=tmp_path / "card.err")
    try:
        bridge = start("hardware.canbridged", "--backend", f"replay:{rec}?dbc0={PT_DBC}&gate={tmp_path / 'gate'}",
                       *bridge_args, log=tmp_path / "cb.err")
        wait_for_line(tmp_path / "card.err", "identifying the car", 60)
    except BaseException:
        stop(card)
        raise
    return card, bridge


def reference(name: str) -> tuple[np.ndarray, np.ndarray]:
    base = DATA / "processed_log" / "CAN" / name
    return load_npy(base / "t").reshape(-1), load_npy(base / "value").reshape(-1)


def fraction_matching(times: np.ndarray, speed: np.ndarray, angle: np.ndarray, window_s: float = 1.0) -> float:
    """Share of carStates whose speed and steering angle both equal (within 0.05 m/s and 0.1°) the data
    set's values at one recorded time no more than window_s before the time the carState stands for.
    The window absorbs the pipeline's latency (which a loaded machine stretches); the exact 10 ms
    alignment is checked in-process by test_card_realdata.py."""
    st, sv = reference("speed")
    at, av = reference("steering_angle")
    ok = 0
    for t, v, a in zip(times, speed, angle, strict=True):
        lo, hi = np.searchsorted(st, [t - window_s, t + 0.02])
        cand = np.concatenate([st[lo:hi], at[np.searchsorted(at, t - window_s):np.searchsorted(at, t + 0.02)]])
        si = np.clip(np.searchsorted(st, cand, side="right") - 1, 0, None)
        ai = np.clip(np.searchsorted(at, cand, side="right") - 1, 0, None)
        ok += bool(np.any((np.abs(sv[si] - v) <= 0.05) & (np.abs(av[ai] - a) <= 0.1 + 1e-4)))
    return ok / len(times)


@pytest.mark.skipif(not have_data(), reason=SKIP_REASON)
def test_real_rav4_through_canbridged_and_card(tmp_path):
    offset, duration = 20.0, 5.0
    t_first = float(load_npy(RAW / "t").min())
    cs_sock = messaging.sub_sock("carState")
    can_sock = messaging.sub_sock("can")
    card = start("selfdrive.car.card", "--car", "TOYOTA_RAV4", log=tmp_path / "card.err")
    bridge = None
    rows = []
    try:
        bridge = start("hardware.canbridged", "--backend",
                       f"replay:{RAW}?{REPLAY_DBCS}&offset={offset}&duration={duration}&gate={tmp_path / 'gate'}",
                       log=tmp_path / "cb.err")
        wait_for_line(tmp_path / "card.err", "identifying the car")
        wait_up(can_sock, time.monotonic() + 30, "canbridged")
        t0 = open_gate(tmp_path / "gate", LEAD_S)
        # until CAN has been gone long enough to be flagged (a loaded machine only delays that)
        while time.monotonic() < t0 + duration + 5 and not (
                time.monotonic() > t0 + duration + 0.6 and rows and rows[-1][4] and not rows[-1][3]):
            for m in messaging.drain_sock(cs_sock, wait_for_one=False) or []:
                cs = m.carState
                rows.append((m.logMonoTime * 1e-9, cs.vEgoRaw, cs.steeringAngleDeg, cs.canValid, cs.canTimeout,
                             m.valid))
            time.sleep(0.05)
    finally:
        stop(*(p for p in (card, bridge) if p is not None))
    card_log = (tmp_path / "card.err").read_text()
    assert rows, card_log[-3000:]
    r = np.array(rows)
    # what recorded time each carState stands for: the replay pins recorded t_first+offset to t0
    rec_t = t_first + offset + (r[:, 0] - t0)
    # after start-up (fingerprint window, every message seen): once valid, valid until the replay ends
    first_valid = int(np.argmax(r[:, 3]))
    steady = (np.arange(len(r)) >= first_valid) & (r[:, 0] < t0 + duration - 0.1)
    assert r[first_valid, 3] and steady.sum() > 100, card_log[-3000:]
    assert (r[steady, 3] == r[steady, 5]).all()  # the Event's valid flag is canValid
    if not r[steady, 3].all():
        # Only a machine too loaded to keep real time may break this, and then the daemons must say so:
        # frames that reach card late time out (correctly), and the late loop is logged.
        lag_logged = "loop lagging" in card_log + (tmp_path / "cb.err").read_text()
        reasons = [ln for ln in card_log.splitlines() if "CAN invalid" in ln][1:]
        bad_t = r[steady][r[steady, 3] == 0, 0] - t0
        assert lag_logged and all("timed out" in ln and "never received" not in ln for ln in reasons), \
            (bad_t[:10], r[first_valid, 0] - t0, card_log)
        assert r[steady, 3].mean() > 0.9, card_log
    assert fraction_matching(rec_t[steady], r[steady, 1], r[steady, 2]) >= 0.99
    # CAN stops when the replay ends: carState keeps coming, flagged, not frozen-and-fine
    assert r[-1, 4] and not r[-1, 3] and not r[-1, 5], card_log[-2000:]

    assert "DSU absent (no PRE_COLLISION/ACC_CONTROL from the car on bus 0)" in card_log
    with car.CarParams.from_bytes(Params().get("CarParams")) as CP:
        assert CP.carFingerprint == "TOYOTA_RAV4" and CP.openpilotLongitudinalControl
    assert last_status(tmp_path / "cb.err")["mode"] == "toyota:329"  # taken from card's carParams


def actuating(address: int, data: bytes) -> bool:
    if address == 0x2E4:
        return bool(data[0] & 1) and int.from_bytes(data[1:3], "big", signed=True) != 0
    if address == 0x343:
        return int.from_bytes(data[0:2], "big", signed=True) != 0
    return False


def test_card_in_the_loop_safety_has_the_last_word(tmp_path):
    """A careless controlsd (this test) keeps asking for torque and acceleration after the brake is pressed;
    card turns that into frames; canbridged's safety layer (mode from card's carParams) stops them."""
    # engaged once card has published carParams (1 s of fingerprinting) and canbridged took its safety mode (after
    # 0.5 s of canValid: the bus agrees): a mode change resets the safety layer, and only a new rising edge of
    # cruise allows controls again
    engage_at, brake_at, seconds = 2.6, 3.6, 4.2
    rav4 = SyntheticRav4()
    rec = write_recording(tmp_path / "rec", rav4.stream(seconds, cruise=lambda t: t >= engage_at,
                                                        brake=lambda t: t >= brake_at))
    pm = messaging.PubMaster(["carControl"])
    sm = messaging.SubMaster(["carState"])
    can_sock = messaging.sub_sock("can")
    card, bridge = forced_rav4_on_recording(tmp_path, rec, "--tx-log", str(tmp_path / "tx"))
    try:
        wait_up(can_sock, time.monotonic() + 30, "canbridged")
        t0 = open_gate(tmp_path / "gate", LEAD_S)
        while time.monotonic() < t0 + seconds:
            sm.update(10)
            engaged = sm["carState"].cruiseState.enabled  # and never looks at the brake
            msg = messaging.new_message("carControl")
            cc = msg.carControl
            cc.enabled = cc.latActive = cc.longActive = engaged
            cc.actuators.torque = 0.3 if engaged else 0.0
            cc.actuators.accel = 0.5 if engaged else 0.0
            pm.send("carControl", msg)
        # canbridged gone: card keeps publishing carState at its rate, flagged, from its own clock
        stop(bridge)
        cs_sock = messaging.sub_sock("carState")
        wait_up(cs_sock, time.monotonic() + 5, "card")
        t_stop = time.monotonic()
        time.sleep(0.8)
        silent = [m.carState for m in messaging.drain_sock(cs_sock) if m.logMonoTime * 1e-9 > t_stop + 0.3]
        assert len(silent) >= 30, len(silent)
        assert not any(cs.canValid for cs in silent) and all(cs.canTimeout for cs in silent)
    finally:
        stop(card, bridge)
        pm.close()
    sent = [json.loads(ln) for ln in (tmp_path / "tx").read_text().splitlines()] if (tmp_path / "tx").exists() else []
    acts = [(s["t_us"] / 1e6 - t0, s["address"]) for s in sent if actuating(s["address"], bytes.fromhex(s["data"]))]
    logs = (tmp_path / "card.err").read_text()[-2000:] + (tmp_path / "cb.err").read_text()[-2000:]
    assert {a for t, a in acts if engage_at <= t < brake_at} == {0x2E4, 0x343}, logs  # engaged: card's frames pass
    assert all(t >= engage_at for t, _ in acts)
    mode_set = [ln for ln in (tmp_path / "cb.err").read_text().splitlines() if '"mode": "toyota:329"' in ln]
    assert mode_set, logs
    late = [(t, a) for t, a in acts if t >= brake_at + 0.03]
    assert late == [], late[:5]
    status = last_status(tmp_path / "cb.err")
    assert status["mode"] == "toyota:329"
    assert status["tx_blocked"].get("NOT_ALLOWED:0x2e4", 0) > 20  # card kept asking after the brake


def test_a_forced_car_that_wakes_late_is_planned_from_its_own_bus(tmp_path):
    """An adapter up (or a simulator started) before the car: a forced platform waits for the bus, however long,
    and reads the wiring from it. A RAV4 whose DSU is unplugged sends no PRE_COLLISION: a plan guessed from the
    silent bus ("stock") would wait for it forever, carState never valid, nothing ever engaging."""
    rec = write_recording(tmp_path / "rec", SyntheticRav4(dsu=False).stream(4.0))
    sm = messaging.SubMaster(["carState"])
    can_sock = messaging.sub_sock("can")
    card, bridge = forced_rav4_on_recording(tmp_path, rec)
    try:
        wait_up(can_sock, time.monotonic() + 30, "canbridged")  # `can` comes, empty: the car is still asleep
        time.sleep(6.0)  # longer than card used to wait before planning without the bus (5 s)
        t0 = open_gate(tmp_path / "gate", LEAD_S)
        valid = 0
        while time.monotonic() < t0 + 3.5 and valid < 50:
            sm.update(20)
            valid += bool(sm.updated["carState"] and sm["carState"].canValid)
    finally:
        stop(card, bridge)
        can_sock.close()
    log = (tmp_path / "card.err").read_text()
    assert "DSU absent (no PRE_COLLISION/ACC_CONTROL from the car on bus 0)" in log, log[-2000:]
    assert "connected buses [0] (seen on the bus)" in log
    assert "waiting for CAN to read the car's wiring (is the car on?)" in log  # and it said why it waited
    assert valid >= 50, log[-2000:]
    with car.CarParams.from_bytes(Params().get("CarParams")) as CP:
        assert CP.openpilotLongitudinalControl and CP.carFingerprint == "TOYOTA_RAV4"


@pytest.mark.skipif(not have_data(), reason=SKIP_REASON)
def test_real_rav4_without_car_is_not_recognised_and_silent(tmp_path):
    """The recorded minute holds no firmware answers (and Toyota keeps no CAN fingerprints): without --car it is
    not recognised, the only frames offered are card's queries, and canbridged ends silent, saying why."""
    can_sock = messaging.sub_sock("can")
    card = start("selfdrive.car.card", log=tmp_path / "card.err")
    bridge = None
    try:
        bridge = start("hardware.canbridged", "--backend", f"replay:{RAW}?{REPLAY_DBCS}&offset=5&duration=20",
                       "--tx-log", str(tmp_path / "tx"), log=tmp_path / "cb.err")
        wait_for_line(tmp_path / "card.err", "car not recognised: dashcam mode", 60)
        wait_for_line(tmp_path / "cb.err", "safety: dashcam", 10)
        cs_sock = messaging.sub_sock("carState")
        wait_up(cs_sock, time.monotonic() + 10, "card's carState")
        time.sleep(0.5)
        states = [m for m in messaging.drain_sock(cs_sock)]
    finally:
        stop(*(p for p in (card, bridge) if p is not None))
        can_sock.close()
    assert states and not any(m.carState.canValid or m.valid for m in states)  # no car port: nothing pretends
    sent = [json.loads(ln) for ln in (tmp_path / "tx").read_text().splitlines()] if (tmp_path / "tx").exists() else []
    assert sent and all(is_diagnostic(s["address"]) for s in sent)  # the queries; nothing answered them
    with car.CarParams.from_bytes(Params().get("CarParams")) as CP:
        assert CP.carFingerprint == "MOCK" and CP.dashcamOnly
    status = last_status(tmp_path / "cb.err")
    assert status["car"] == "dashcam" and status["mode"] == "silent:0"
