"""Identifying the car: opendbc's flow (firmware, then CAN fingerprint), a forced platform, dashcam mode for an
unknown car, and what the plan says about the wiring. The firmware path against a car: tools/sim/lib/tests/test_ecus.py.
"""

import pytest
from opendbc.car.can_definitions import CanData
from opendbc.car.fingerprints import _FINGERPRINTS
from opendbc.car.structs import CarParams
from opendbc.car.toyota.values import ToyotaFlags

from selfdrive.car.car_identity import describe
from selfdrive.car.car_specific import CarSetup, build_plan
from selfdrive.car.fingerprinting import FINGERPRINT_FRAMES, Fingerprinter, FingerprintResult, is_diagnostic
from selfdrive.car.tests.helpers import VirtualBus, start


def frames_of(fingerprint: dict[int, int], bus: int = 0) -> list[CanData]:
    return [CanData(a, bytes(n), bus) for a, n in fingerprint.items() if a < 0x800]


@pytest.mark.parametrize("platform, dashcam", [("CHEVROLET_BOLT_EUV", False), ("CADILLAC_ESCALADE", True)])
def test_a_car_that_does_not_answer_queries_is_found_by_its_can_fingerprint(platform, dashcam, monkeypatch):
    # opendbc's flow: no ECU answers the firmware queries, so the FPv1 fingerprint decides (GM keeps them)
    msg = frames_of(_FINGERPRINTS[platform][0])
    bus = VirtualBus(lambda k: msg)
    r = bus.identify(monkeypatch)
    assert (r.candidate, r.source) == (platform, "can") and r.car_fw == ()
    plan = build_plan(r, CarSetup())
    assert plan.CP.carFingerprint == platform and plan.connected_buses == frozenset({0})
    assert plan.CP.fingerprintSource == CarParams.FingerprintSource.can
    assert plan.CP.dashcamOnly == dashcam  # opendbc's own word: the Escalade is identified but not controlled
    assert ("dashcam only" in describe(plan.CP)) == dashcam


def test_unknown_car_is_dashcam_mode():
    r = FingerprintResult(None, "none", {0: {0x123: 3, 0x456: 7}}, 200)
    plan = build_plan(r, CarSetup())
    CP = plan.CP
    assert CP.carFingerprint == "MOCK" and CP.dashcamOnly and len(CP.safetyConfigs) == 0
    assert any("not recognised: dashcam mode" in n for n in plan.notes)


def test_forced_window_starts_at_the_first_frame():
    fp = Fingerprinter("TOYOTA_RAV4")
    for _ in range(FINGERPRINT_FRAMES + 1):
        fp.add([])  # nothing before the first frame counts: a car not awake yet
    assert fp.frames == 0 and not fp.done
    for _ in range(FINGERPRINT_FRAMES - 1):
        fp.add([(0xAA, bytes(8), 0)])
    assert not fp.done
    fp.add([])
    assert fp.done  # once started, a silent message counts: the window is 1 s of bus time


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


def test_diagnostic_addresses_are_iso_15765_ones():
    assert all(is_diagnostic(a) for a in (0x7DF, 0x7E0, 0x750, 0x6B6, 0x18DB33F1, 0x18DA10F1, 0x24B))
    assert not any(is_diagnostic(a) for a in (0x2E4, 0x343, 0x412, 0x18DA10F2, 0x18DB33F2, 0x800, 0x24C))
