"""The real 2018 RAV4 minute with a driving assistant engaged (../shared/data/comma2k19-rav4): the car's
own frames (buses 0 and 1) feed the rx hook and the frames the assistant sent (bus 128, sent on bus 0)
go through the tx hook, in time order, with a heartbeat at each sent STEERING_LKA (the assistant's
100 Hz control loop). Those frames were accepted by the car's safety hardware of the day: all must
pass. Altered copies of the stream must be refused exactly where the independent model says a rule
breaks."""

from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest

from selfdrive.car.safety import Safety, SafetyMode, toyota_param
from selfdrive.car.safety.tests import realdata
from selfdrive.car.safety.tests.safety_model import ToyotaModel, s16, with_checksum

pytestmark = pytest.mark.skipif(not realdata.available(), reason=realdata.SKIP_REASON)

# TOYOTA_RAV4 in opendbc: EPS scale 73, brake pedal in 0x224 (its new_mc DBC); with the DSU unplugged,
# the assistant did longitudinal control itself.
PARAM = toyota_param(73, alt_brake=True)
STEERING_LKA, ACC_CONTROL, PCM_CRUISE, TORQUE_SENSOR, BRAKE = 0x2E4, 0x343, 0x1D2, 0x260, 0x224

Change = Callable[[int, bytes], bytes]


def replay(side: str, tx_change: Change | None = None, rx_change: Change | None = None,
           heartbeat: bool = True) -> list[str]:
    """Verdicts for every sent frame, from the C ("c") or the model ("model")."""
    if side == "c":
        s = Safety(SafetyMode.TOYOTA, PARAM)
        beat, rx, tx = s.heartbeat, s.rx, s.tx_verdict
    else:
        m = ToyotaModel(PARAM)
        beat, rx, tx = m.do_heartbeat, m.rx, m.tx
    verdicts = []
    for t, bus, addr, data in realdata.frames():
        if bus == realdata.SENT:
            if heartbeat and addr == STEERING_LKA:
                beat(t)
            verdicts.append(tx(addr, 0, tx_change(addr, data) if tx_change else data, t))
        else:
            rx(addr, bus, rx_change(addr, data) if rx_change and bus == 0 else data, t)
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


def eps_silent(addr: int, data: bytes) -> bytes:
    return with_checksum(addr, data[:5] + b"\x00\x00" + data[7:]) if addr == TORQUE_SENSOR else data


def brake_on(addr: int, data: bytes) -> bytes:
    return bytes([data[0] | 0x20]) + data[1:] if addr == BRAKE else data


class TestRealDrive:
    def test_every_sent_frame_is_allowed(self):
        verdicts = replay("c")
        counts = Counter(f[2] for f in sent())
        assert counts[STEERING_LKA] == 6000 and counts[ACC_CONTROL] == 2000
        assert Counter(verdicts) == {"OK": len(sent())}
        assert replay("model") == verdicts

    def test_the_drive_engages_and_steers(self):
        s = Safety(SafetyMode.TOYOTA, PARAM)
        first_allowed = first_request = None
        for t, bus, addr, data in realdata.frames():
            if bus == realdata.SENT:
                if addr == STEERING_LKA:
                    s.heartbeat(t)
                    if data[0] & 1 and first_request is None:
                        first_request = t
                assert s.tx(addr, 0, data, t)
            else:
                s.rx(addr, bus, data, t)
            if first_allowed is None and s.controls_allowed:
                first_allowed = t
        t0 = realdata.frames()[0][0]
        assert 8.9e6 < first_allowed - t0 < 9.1e6  # CRUISE_ACTIVE rises 9.02 s in
        assert first_allowed < first_request
        assert s.controls_allowed and not s.relay_malfunction
        c = s.counters
        assert c["rx_refused"] == {} and c["tx_blocked"] == {}

    def test_tracked_speed_matches_the_data_set(self):
        speed_t = np.load(open(realdata.DATA / "processed_log/CAN/speed/t", "rb"))
        speed = np.load(open(realdata.DATA / "processed_log/CAN/speed/value", "rb")).reshape(-1)
        expected = dict(zip((round(t * 1e6) for t in speed_t.tolist()), speed.tolist(), strict=True))
        s = Safety(SafetyMode.TOYOTA, PARAM)
        errors = []
        for t, bus, addr, data in realdata.frames():
            if bus == 0:
                s.rx(addr, bus, data, t)
                if addr == 0xAA:
                    errors.append(abs(s.car_state["speed"] - expected[t]))
        assert len(errors) == len(expected) and max(errors) < 0.01  # 0.01 km/h resolution, truncated mean


class TestAlteredDrives:
    def test_torque_times_three(self):
        verdicts = replay("c", tx_change=times_three)
        assert verdicts == replay("model", tx_change=times_three)
        refused = Counter(v for v in verdicts if v != "OK")
        assert {"MAX_TORQUE", "RATE"} <= set(refused)
        kinds = {f[2] for f, v in zip(sent(), verdicts, strict=True) if v != "OK"}
        assert kinds == {STEERING_LKA}  # the other sent frames did not change and still pass
        # what did go out stays within the limits, against the torque that went out before it
        last = 0
        for (_, _, addr, data), v in zip(sent(), verdicts, strict=True):
            if addr == STEERING_LKA and v == "OK":
                torque = s16(times_three(addr, data), 1)
                assert abs(torque) <= 1500
                assert abs(torque) <= (abs(last) if last * torque >= 0 else 0) + 15
                last = torque

    def test_cruise_disengaged(self):
        verdicts = replay("c", rx_change=cruise_off)
        assert verdicts == replay("model", rx_change=cruise_off)
        for (_, _, addr, data), v in zip(sent(), verdicts, strict=True):
            if addr == STEERING_LKA:
                assert v == ("NOT_ALLOWED" if data[0] & 1 else "OK")
            elif addr == ACC_CONTROL:
                assert v == ("NOT_ALLOWED" if s16(data, 0) else "OK")
            else:
                assert v == "OK"
        assert sum(1 for f in sent() if f[2] == STEERING_LKA and f[3][0] & 1) == 5083

    @pytest.mark.parametrize("name,kwargs", [("no heartbeat", {"heartbeat": False}),
                                             ("brake pressed", {"rx_change": brake_on})])
    def test_nothing_actuates(self, name, kwargs):
        verdicts = replay("c", **kwargs)
        assert verdicts == replay("model", **kwargs)
        for (_, _, addr, data), v in zip(sent(), verdicts, strict=True):
            if addr == STEERING_LKA and data[0] & 1 or addr == ACC_CONTROL and s16(data, 0):
                assert v == "NOT_ALLOWED", name

    def test_eps_not_following(self):
        """The EPS reports no torque at all: commands beyond the error band must ramp down and stop."""
        verdicts = replay("c", rx_change=eps_silent)
        assert verdicts == replay("model", rx_change=eps_silent)
        assert "TORQUE_ERROR" in verdicts
        for (_, _, addr, data), v in zip(sent(), verdicts, strict=True):
            if addr == STEERING_LKA and v == "OK":
                assert abs(s16(data, 1)) <= 350 + 25
