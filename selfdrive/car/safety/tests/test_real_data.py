"""The real 2018 RAV4 minute with a driving assistant engaged (../shared/data/comma2k19-rav4), through opendbc's
Toyota mode with the param card publishes for it: the car's own frames (buses 0 and 1) feed rx and the frames
the assistant sent (bus 128, sent on bus 0) go through tx, in time order, with a heartbeat at each sent
STEERING_LKA (the assistant's 100 Hz control loop). Altered copies must be refused where a rule breaks."""

from collections import Counter
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import pytest
from opendbc.can.dbc import DBC
from opendbc.car.car_helpers import interfaces
from opendbc.car.toyota.values import ToyotaSafetyFlags

from selfdrive.car.car_specific import CarSetup, build_plan
from selfdrive.car.fingerprinting import FingerprintResult
from selfdrive.car.safety import Safety, SafetyMode
from selfdrive.car.safety.tests import realdata

pytestmark = pytest.mark.skipif(not realdata.available(), reason=realdata.SKIP_REASON)

STEERING_LKA, ACC_CONTROL, PCM_CRUISE, BRAKE = 0x2E4, 0x343, 0x1D2, 0x224
NOT_IN_OPENDBC = realdata.NOT_IN_OPENDBC
Change = Callable[[int, bytes], bytes]


def fingerprint() -> dict[int, dict[int, int]]:
    fp: dict[int, dict[int, int]] = {b: {} for b in range(8)}
    for _, bus, addr, data in realdata.frames():
        if bus in (0, 1):
            fp[bus][addr] = len(data)
    return fp


@lru_cache(maxsize=1)
def params() -> tuple[int, int]:
    """(opendbc's get_params safetyParam, card's for this installation): the DSU is unplugged, the assistant
    did longitudinal control, so card clears opendbc's STOCK_LONGITUDINAL flag (car_specific.py)."""
    cp = interfaces["TOYOTA_RAV4"].get_params("TOYOTA_RAV4", fingerprint(), [], False, False, False)
    plan = build_plan(FingerprintResult("TOYOTA_RAV4", "can", fingerprint(), 100), CarSetup())
    cfg, card = cp.safetyConfigs[0], plan.CP.safetyConfigs[0]
    assert cfg.safetyModel == card.safetyModel == "toyota"
    return int(cfg.safetyParam), int(card.safetyParam)


def with_checksum(addr: int, data: bytes) -> bytes:
    sig = DBC(realdata.PT_DBC).addr_to_msg[addr].sigs["CHECKSUM"]
    out = bytearray(data)
    out[-1] = sig.calc_checksum(addr, sig, out)
    return bytes(out)


def s16(data: bytes, i: int) -> int:
    return int.from_bytes(data[i:i + 2], "big", signed=True)


def replay(param: int | None = None, tx_change: Change | None = None, rx_change: Change | None = None) -> list[str]:
    s = Safety(SafetyMode.TOYOTA, params()[1] if param is None else param)
    verdicts = []
    for t, bus, addr, data in realdata.frames():
        if bus == realdata.SENT:
            if addr == STEERING_LKA:
                s.heartbeat(t)
            verdicts.append(s.tx_verdict(addr, 0, tx_change(addr, data) if tx_change else data, t))
        else:
            s.rx(addr, bus, rx_change(addr, data) if rx_change and bus == 0 else data, t)
    return verdicts


def sent() -> list[tuple[int, int, int, bytes]]:
    return [f for f in realdata.frames() if f[1] == realdata.SENT]


def times_three(addr: int, data: bytes) -> bytes:
    if addr != STEERING_LKA:
        return data
    torque = max(-32768, min(32767, 3 * s16(data, 1)))
    return with_checksum(addr, data[:1] + torque.to_bytes(2, "big", signed=True) + data[3:])


def cruise_off(addr: int, data: bytes) -> bytes:
    return with_checksum(addr, bytes([data[0] & ~0x20]) + data[1:]) if addr == PCM_CRUISE else data


def actuating(addr: int, data: bytes) -> bool:
    return (addr == STEERING_LKA and bool(data[0] & 1 or s16(data, 1))) or (addr == ACC_CONTROL and s16(data, 0) != 0)


class TestRealDrive:
    def test_card_param_is_opendbcs_with_the_dsu_unplugged(self):
        opendbc_param, card_param = params()
        assert opendbc_param == 73 | ToyotaSafetyFlags.ALT_BRAKE | ToyotaSafetyFlags.STOCK_LONGITUDINAL
        assert card_param == opendbc_param & ~ToyotaSafetyFlags.STOCK_LONGITUDINAL

    def test_every_steering_and_acc_frame_is_allowed(self):
        verdicts = replay()
        counts = Counter(f[2] for f in sent())
        assert counts[STEERING_LKA] == 6000 and counts[ACC_CONTROL] == 2000
        by_addr = Counter((f[2], v) for f, v in zip(sent(), verdicts, strict=True))
        for (addr, verdict), n in by_addr.items():
            assert verdict == ("NOT_LISTED" if addr in NOT_IN_OPENDBC else "OK"), (hex(addr), verdict, n)
        assert by_addr[(STEERING_LKA, "OK")] == 6000 and by_addr[(ACC_CONTROL, "OK")] == 2000

    def test_the_drive_engages_and_steers(self):
        s = Safety(SafetyMode.TOYOTA, params()[1])
        first_allowed = first_request = None
        for t, bus, addr, data in realdata.frames():
            if bus == realdata.SENT:
                if addr == STEERING_LKA:
                    s.heartbeat(t)
                    if data[0] & 1 and first_request is None:
                        first_request = t
                s.tx(addr, 0, data, t)
            else:
                assert s.rx(addr, bus, data, t), (hex(addr), s.last_reason)
            if first_allowed is None and s.controls_allowed:
                first_allowed = t
        t0 = realdata.frames()[0][0]
        assert 8.9e6 < first_allowed - t0 < 9.1e6  # CRUISE_ACTIVE rises 9.02 s in
        assert first_allowed < first_request
        assert s.controls_allowed and not s.relay_malfunction
        assert s.counters["rx_refused"] == {} and set(s.counters["tx_blocked"]) == {"NOT_LISTED"}

    def test_tracked_speed_matches_the_data_set(self):
        speed_t = np.load(open(realdata.DATA / "processed_log/CAN/speed/t", "rb"))
        speed = np.load(open(realdata.DATA / "processed_log/CAN/speed/value", "rb")).reshape(-1)
        expected = dict(zip((round(t * 1e6) for t in speed_t.tolist()), speed.tolist(), strict=True))
        s = Safety(SafetyMode.TOYOTA, params()[1])
        errors = []
        for t, bus, addr, data in realdata.frames():
            if bus == 0:
                s.rx(addr, bus, data, t)
                if addr == 0xAA:
                    errors.append(abs(s.car_state["speed"] - expected[t]))
        assert len(errors) == len(expected) and max(errors) < 0.01


class TestAlteredDrives:
    def test_torque_times_three_is_refused(self):
        verdicts = replay(tx_change=times_three)
        refused = {f[2] for f, v in zip(sent(), verdicts, strict=True) if v not in ("OK", "NOT_LISTED")}
        assert refused == {STEERING_LKA}  # the other sent frames did not change and still pass
        assert Counter(v for f, v in zip(sent(), verdicts, strict=True) if f[2] == STEERING_LKA)["REFUSED"] > 1000
        # what did go out stays within opendbc's Toyota limits, against the torque that went out before it
        last = 0
        for (_, _, addr, data), v in zip(sent(), verdicts, strict=True):
            if addr == STEERING_LKA and v == "OK":
                torque = s16(times_three(addr, data), 1)
                assert abs(torque) <= 1500
                assert abs(torque) <= (abs(last) if last * torque >= 0 else 0) + 15
                last = torque

    def test_disengaged_drive_actuates_nothing(self):
        verdicts = replay(rx_change=cruise_off)
        acts = 0
        for (_, _, addr, data), v in zip(sent(), verdicts, strict=True):
            if actuating(addr, data):
                acts += 1
                assert v == "NOT_ALLOWED", (hex(addr), data.hex())
        assert acts > 5000

    def test_opendbcs_stock_longitudinal_param_refuses_the_assistants_acc(self):
        """With the DSU plugged in (opendbc's default), only cancel frames may go on ACC_CONTROL."""
        verdicts = replay(param=params()[0])
        for (_, _, addr, data), v in zip(sent(), verdicts, strict=True):
            if addr == STEERING_LKA:
                assert v == "OK"
            if addr == ACC_CONTROL and s16(data, 0) != 0:
                assert v == "REFUSED"
