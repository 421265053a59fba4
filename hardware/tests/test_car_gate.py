"""canbridged's CarGate: what may reach the car before it is identified (diagnostic queries only), after
(nothing, until the bus agrees), and for a car that is not recognised (nothing, ever)."""

import pytest
from opendbc.can import CANPacker
from opendbc.car.toyota import toyotacan

from hardware.canbridged import BUS_AGREE_CYCLES, DASHCAM, ENABLED, IDENTIFYING, WAITING_FOR_BUS, CanBridge, CarGate
from hardware.tests.test_canbridged import FakeBackend
from selfdrive.car.car_specific import CarSetup, build_plan
from selfdrive.car.fingerprinting import FingerprintResult, is_diagnostic
from selfdrive.car.tests.helpers import PT_DBC

QUERY = (0x7E0, bytes([0x02, 0x3E, 0x00, 0, 0, 0, 0, 0]), 0)     # UDS tester present to the engine
FUNCTIONAL = (0x7DF, bytes([0x02, 0x09, 0x02, 0, 0, 0, 0, 0]), 0)  # OBD VIN request to every ECU


def rav4_cp(candidate: str | None = "TOYOTA_RAV4") -> bytes:
    source = "fixed" if candidate else "none"
    return build_plan(FingerprintResult(candidate, source, {0: {0xAA: 8}}, 100), CarSetup(dsu="absent")).CP.to_bytes()


@pytest.fixture
def gate():
    return CarGate(CanBridge(FakeBackend()))


def sends(gate: CarGate, *frames) -> list[int]:
    """Addresses of the frames the bridge let out."""
    b = gate.bridge
    b.heartbeat(1_000)
    b.backend.sent.clear()
    b.transmit(list(frames), 1_000)
    return [f.address for f in b.backend.sent]


def steer():
    return toyotacan.create_steer_command(CANPacker(PT_DBC), 0, False)  # even a zero-torque frame


def test_identifying_lets_only_diagnostic_queries_out(gate):
    assert gate.state == IDENTIFYING and gate.bridge.mode_name == "elm327:0"
    assert sends(gate, QUERY, FUNCTIONAL, steer()) == [0x7E0, 0x7DF]


def test_an_identified_car_gets_nothing_until_its_bus_agrees(gate):
    gate.on_car_params(rav4_cp())
    assert gate.state == WAITING_FOR_BUS and gate.bridge.mode_name == "silent:0"
    assert sends(gate, QUERY, steer()) == []
    for _ in range(BUS_AGREE_CYCLES - 1):
        gate.on_car_state(True)
    gate.on_car_state(False)  # one invalid carState: the count starts again
    for _ in range(BUS_AGREE_CYCLES - 1):
        gate.on_car_state(True)
    assert gate.state == WAITING_FOR_BUS and sends(gate, steer()) == []
    gate.on_car_state(True)
    assert gate.state == ENABLED and gate.bridge.mode_name.startswith("toyota:")
    gate.on_car_params(rav4_cp())  # carParams again (every 50 s): nothing changes
    assert gate.state == ENABLED


def test_a_bus_that_never_agrees_stays_silent(gate):
    gate.on_car_params(rav4_cp())
    for _ in range(10 * BUS_AGREE_CYCLES):
        gate.on_car_state(False)
    assert gate.state == WAITING_FOR_BUS and sends(gate, steer(), QUERY) == []


def test_a_car_that_is_not_recognised_is_silent_for_good(gate):
    gate.on_car_params(rav4_cp(None))
    for _ in range(2 * BUS_AGREE_CYCLES):
        gate.on_car_state(True)
    assert gate.state == DASHCAM and gate.bridge.mode_name == "silent:0"
    assert sends(gate, QUERY, steer()) == []


def test_corrupt_car_params_are_not_a_car(gate):
    gate.on_car_params(b"\x00garbage")
    assert gate.state == DASHCAM and sends(gate, steer()) == []


def test_the_diagnostic_rule_is_the_safety_layers():
    # the bridge tells card's queries from its control frames with is_diagnostic; the C decides what leaves
    g = CarGate(CanBridge(FakeBackend()))
    addresses = [*range(0x000, 0x800), 0x18DB33F1, 0x18DB33F2, 0x18DA00F1, 0x18DAF1F1, 0x18DA10F1, 0x18DA10F2,
                 0x18DAFFF1, 0x1FFFFFFF]
    for a in addresses:
        assert bool(sends(g, (a, bytes(8), 0))) == is_diagnostic(a), hex(a)


def test_a_car_params_message_names_the_car_and_an_unreadable_one_does_not(gate):
    # canbridged and the lockstep bridge hand the gate card's carParams message (its struct, or None when the
    # message itself did not parse)
    from cereal import car, messaging
    msg = messaging.new_message("carParams")
    with car.CarParams.from_bytes(rav4_cp()) as cp:
        msg.carParams = cp
    gate.on_car_params_message(messaging.log_from_bytes(msg.to_bytes()).carParams)
    assert gate.state == WAITING_FOR_BUS and CarGate.label(gate) == WAITING_FOR_BUS
    gate.on_car_params_message(None)
    assert gate.state == DASHCAM and sends(gate, steer()) == []
    assert CarGate.label(None) == "forced mode"
