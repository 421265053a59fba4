"""The simulated car's ECUs against opendbc's own identification: it finds each simulated platform by its
firmware (not by a forced name), reads its VIN, and ISO-TP is spoken as an ECU speaks it.

opendbc's queries time out on time.monotonic (0.1 s per query): here a virtual clock advances 10 ms per bus
message, so the run is the same on a loaded machine."""

import pytest
from opendbc.car.structs import CarParams
from opendbc.car.vin import is_valid_vin

from selfdrive.car.car_identity import describe
from selfdrive.car.car_specific import CarSetup, build_plan
from selfdrive.car.tests.helpers import DT, VirtualBus
from tools.sim.lib.ecus import SimEcus, check_digit, is_diagnostic, sim_vin
from tools.sim.lib.sim_car import SIM_PLATFORMS, SimCar
from tools.sim.lib.simulation import SimConfig, Simulation


def sim_car_bus(platform: str) -> tuple[VirtualBus, SimCar]:
    """The whole simulated car (powertrain, camera and radar buses, as the simulation steps them)."""
    sim = Simulation(SimConfig(car=platform, camera=False))
    commands: list = []

    def step(k: int) -> list:
        frames = sim.step(list(commands))
        commands.clear()
        return frames

    bus = VirtualBus(step)
    bus.on_send = lambda m: commands.append((m.address, bytes(m.dat), m.src))
    return bus, sim.car


@pytest.mark.parametrize("platform", list(SIM_PLATFORMS))
def test_opendbc_identifies_the_simulated_car_by_firmware(platform, monkeypatch):
    bus, car = sim_car_bus(platform)
    fp = bus.identify(monkeypatch)
    assert fp.candidate == platform and fp.source == "fw" and fp.exact
    assert fp.vin == car.ecus.vin and is_valid_vin(fp.vin)
    answered = {(f.address, f.subAddress if f.subAddress else None) for f in fp.car_fw}
    assert answered == {(e.address, e.sub_address) for e in car.ecus.ecus}
    # every frame the tester sent is diagnostic: nothing else may pass the safety layer before the car is known
    assert bus.sent and all(is_diagnostic(m.address) for m in bus.sent)
    # bounded: opendbc's queries plus its CAN window, in bus steps (the budget is 3 s)
    assert bus.k * DT < 3.0, bus.k
    CP = build_plan(fp, CarSetup()).CP
    assert CP.carFingerprint == platform and CP.fingerprintSource == CarParams.FingerprintSource.fw
    assert len(CP.carFw) == len(fp.car_fw) and CP.carVin == fp.vin and not CP.dashcamOnly
    assert describe(CP).startswith(f"car {platform}, identified by firmware query")


def test_a_bus_without_answers_is_not_recognised_in_bounded_time(monkeypatch):
    # a car whose ECUs do not answer (or a brand opendbc cannot identify): the CAN fingerprint fails too
    frames = [(0x1A6, bytes(8), 0), (0x158, bytes(8), 0), (0x17C, bytes(8), 0)]  # Honda-like traffic
    bus = VirtualBus(lambda k: frames)
    fp = bus.identify(monkeypatch)
    assert fp.candidate is None and fp.source == "none" and fp.car_fw == ()
    assert bus.k * DT < 8.0, bus.k
    CP = build_plan(fp, CarSetup()).CP
    assert CP.dashcamOnly and len(CP.safetyConfigs) == 0
    assert describe(CP) == "car not recognised: dashcam mode, nothing is sent to the car"


def test_a_silent_bus_ends_identification_too(monkeypatch):
    bus = VirtualBus(lambda k: [])
    fp = bus.identify(monkeypatch)
    assert fp.candidate is None and bus.k < 1000


def test_iso_tp_multi_frame_waits_for_flow_control():
    ecus = SimEcus("LEXUS_CTH")
    engine = next(e for e in ecus.ecus if e.address == 0x7E0)
    ecus.receive(0x7E0, bytes([0x02, 0x09, 0x04, 0, 0, 0, 0, 0]), 0)  # OBD: calibration ids (34 bytes)
    first = ecus.frames()
    assert [(a, d[0] >> 4) for a, d, _ in first] == [(0x7E8, 0x1)]  # a first frame, and then it waits
    length = ((first[0][1][0] & 0x0F) << 8) | first[0][1][1]
    assert length == len(engine.answers[b"\x09\x04"]) == 35  # "I\x04", a count, two 16-byte calibration ids
    assert ecus.frames() == [] and ecus.frames() == []  # no consecutive frame before the flow control
    ecus.receive(0x7E0, bytes([0x30, 0, 10, 0, 0, 0, 0, 0]), 0)
    cfs = []
    while f := ecus.frames():
        assert len(f) == 1  # one consecutive frame per 10 ms step: the separation time the tester asked for
        cfs.append(f[0][1])
    payload = first[0][1][2:] + b"".join(c[1:] for c in cfs)
    assert payload[:length] == engine.answers[b"\x09\x04"]
    assert [c[0] for c in cfs] == [0x21, 0x22, 0x23, 0x24, 0x25]  # 6 bytes in the first frame, 7 in each next


def test_sub_addressed_ecus_answer_only_their_own_sub_address():
    ecus = SimEcus("TOYOTA_RAV4")
    ecus.receive(0x750, bytes([0x0F, 0x02, 0x3E, 0x00, 0, 0, 0, 0]), 0)  # tester present to the radar (0x0f)
    assert ecus.frames() == [(0x758, bytes([0x0F, 0x02, 0x7E, 0x00, 0, 0, 0, 0]), 0)]
    ecus.receive(0x750, bytes([0x42, 0x02, 0x3E, 0x00, 0, 0, 0, 0]), 0)  # nobody there
    ecus.receive(0x7E0, bytes([0x03, 0x22, 0xF1, 0x90, 0, 0, 0, 0]), 0)  # UDS: not what this engine speaks
    ecus.receive(0x7E0, bytes([0x02, 0x3E, 0x00, 0, 0, 0, 0, 0]), 1)   # another bus
    assert ecus.frames() == []


def test_vin_is_well_formed():
    for p in SIM_PLATFORMS:
        v = sim_vin(p)
        assert is_valid_vin(v) and v[8] == check_digit(v)
    assert check_digit("1M8GDM9AXKP042788") == "X"  # the worked example of the standard
