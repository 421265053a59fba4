"""Identifying the car: FPv1 fingerprints from CAN, a forced platform, and what the plan says about the wiring."""

import pytest
from opendbc.car.fingerprints import _FINGERPRINTS
from opendbc.car.toyota.values import ToyotaFlags

from selfdrive.car.car_specific import CarSetup, build_plan
from selfdrive.car.fingerprinting import FINGERPRINT_FRAMES, MAX_FRAMES, Fingerprinter, FingerprintResult
from selfdrive.car.tests.helpers import start


def frames_of(fingerprint: dict[int, int], bus: int = 0) -> list[tuple[int, bytes, int]]:
    return [(a, bytes(n), bus) for a, n in fingerprint.items() if a < 0x800]


@pytest.mark.parametrize("platform", ["CHEVROLET_BOLT_EUV", "CADILLAC_ESCALADE"])
def test_identifies_a_car_with_fpv1_fingerprints(platform):
    fp = Fingerprinter()
    msg = frames_of(_FINGERPRINTS[platform][0])
    for _ in range(FINGERPRINT_FRAMES):
        fp.add(msg)
        assert not fp.done  # not before the window is full
    fp.add(msg)
    r = fp.result()
    assert fp.done and (r.candidate, r.source) == (platform, "can")
    plan = build_plan(r, CarSetup())
    assert plan.CP.carFingerprint == platform and plan.connected_buses == frozenset({0})


def test_unknown_car_gives_up_and_gets_no_control():
    fp = Fingerprinter()
    for _ in range(MAX_FRAMES + 1):  # bus 1 carries nothing, so its candidates never run out: the 2 s limit ends it
        fp.add([(0x123, bytes(3), 0), (0x456, bytes(7), 0)])
    r = fp.result()
    assert fp.done and r.candidate is None and r.source == "none"
    plan = build_plan(r, CarSetup())
    assert plan.CP.carFingerprint == "MOCK" and any("not recognized" in n for n in plan.notes)


def test_no_candidate_left_on_either_bus_gives_up_after_one_second():
    fp = Fingerprinter()
    for _ in range(FINGERPRINT_FRAMES):
        fp.add([(0x123, bytes(3), 0), (0x456, bytes(7), 1)])
        assert not fp.done
    fp.add([(0x123, bytes(3), 0)])
    assert fp.done and fp.result().candidate is None


def test_gives_up_after_max_frames_when_candidates_stay_ambiguous():
    fp = Fingerprinter()
    for _ in range(MAX_FRAMES + 1):
        fp.add([])  # nothing before the first frame does not count
    assert fp.frames == 0 and not fp.done
    for _ in range(MAX_FRAMES + 1):
        fp.add([(0x7FF, bytes(8), 5)])  # a bus fingerprints are not taken from
    assert fp.done and fp.result().candidate is None


def test_forced_platform_still_watches_the_bus_and_ignores_echoes():
    fp = Fingerprinter("TOYOTA_RAV4")
    for _ in range(FINGERPRINT_FRAMES):
        fp.add([(0xAA, bytes(8), 0), (0x2E4, bytes(5), 128), (0x223, bytes(8), 1)])
    r = fp.result()
    assert fp.done and (r.candidate, r.source) == ("TOYOTA_RAV4", "fixed")
    assert r.buses_seen == frozenset({0, 1}) and 0x2E4 not in r.fingerprint[0]


def test_unknown_forced_platform_is_an_error():
    with pytest.raises(ValueError, match="unknown platform"):
        Fingerprinter("TOYOTA_NOPE")


class TestPlan:
    def rav4(self, bus0: dict[int, int], setup: CarSetup):
        return build_plan(FingerprintResult("TOYOTA_RAV4", "fixed", {0: bus0, 1: {}}, 100), setup)

    def test_dsu_seen_keeps_stock(self):
        plan = self.rav4({0xAA: 8, 0x283: 7, 0x343: 8}, CarSetup())
        assert not plan.CP.flags & ToyotaFlags.DISABLE_RADAR and not plan.CP.openpilotLongitudinalControl
        assert plan.CP.safetyConfigs[0].safetyParam & 0x200  # STOCK_LONGITUDINAL: we may only cancel
        assert plan.tx_drop == {}

    def test_dsu_absent_is_opendbcs_disable_radar(self):
        plan = self.rav4({0xAA: 8}, CarSetup())
        assert plan.CP.flags & ToyotaFlags.DISABLE_RADAR and plan.CP.openpilotLongitudinalControl
        assert plan.CP.safetyConfigs[0].safetyParam == 73 | 0x100
        assert (0x750, 0) in plan.tx_drop

    def test_user_setting_wins_over_detection(self):
        assert self.rav4({0xAA: 8}, CarSetup(dsu="present")).CP.openpilotLongitudinalControl is False
        assert self.rav4({0x283: 7}, CarSetup(dsu="absent")).CP.openpilotLongitudinalControl is True

    def test_no_can_seen_assumes_stock_and_expects_every_bus(self):
        plan = build_plan(FingerprintResult("TOYOTA_RAV4", "fixed", {}, 0), CarSetup())
        assert plan.connected_buses is None and not plan.CP.openpilotLongitudinalControl
        assert any("no CAN seen" in n for n in plan.notes)

    def test_dsu_setting_on_a_car_without_one(self):
        plan = build_plan(FingerprintResult("TOYOTA_RAV4_TSS2", "fixed", {0: {0xAA: 8}}, 100), CarSetup(dsu="absent"))
        assert not plan.CP.flags & ToyotaFlags.DISABLE_RADAR
        assert any("no unpluggable DSU" in n for n in plan.notes)


def test_card_refuses_an_unknown_platform(tmp_path):
    p = start("selfdrive.car.card", "--car", "TOYOTA_NOPE", log=tmp_path / "err")
    assert p.wait(30) == 2
    assert "unknown platform 'TOYOTA_NOPE'" in (tmp_path / "err").read_text()
