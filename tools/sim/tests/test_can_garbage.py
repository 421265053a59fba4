"""The fault tests' CAN garbage: every frame is garbage that the stack can tell from the car's data, of every
kind, never an address the relay rule latches on, and the same garbage for the same seed."""

from opendbc.can import CANParser

from hardware.can_backends import RawFrame, classify
from selfdrive.car.can_validity import FrameFilter
from selfdrive.car.safety import Safety, SafetyMode, toyota_param
from tools.sim.lib.can_garbage import KINDS, RELAY_ADDRESSES, CanGarbage
from tools.sim.lib.sim_car import PT_DBC
from tools.sim.lib.simulation import SimConfig, Simulation


def test_every_frame_is_detectable_garbage():
    g = CanGarbage(PT_DBC, 300_000, 3.0)
    check = FrameFilter([CANParser(PT_DBC, [], 0)])
    frames = [f for _ in range(2000) for f in g.frames()]
    assert 5000 < len(frames) < 7000
    assert all(g.counts[k] > 1000 for k in KINDS)
    for addr, dat, bus in frames:
        assert addr not in RELAY_ADDRESSES
        frame, why = classify(RawFrame(addr, dat, bus, is_extended=addr > 0x7FF))
        if frame is None:
            assert why == "bad_length" and len(dat) > 8
        elif addr in check.rules[0]:
            assert bus == 0 and check.check(addr, dat, 0) in ("length", "checksum"), (hex(addr), dat.hex())


def test_same_seed_same_garbage_and_none_by_default():
    a, b = (Simulation(SimConfig(scenario="straight", seed=7, can_garbage=2.0)) for _ in range(2))
    assert [a.step() for _ in range(50)] == [b.step() for _ in range(50)]
    plain = Simulation(SimConfig(scenario="straight", seed=7))
    assert plain.garbage is None
    assert len(sum((a.step() for _ in range(100)), [])) > len(sum((plain.step() for _ in range(100)), [])) + 100


def test_relay_addresses_cover_every_relay_checked_tx_of_the_toyota_modes():
    # opendbc's tables decide which addresses latch the relay; a garbage frame at one of them is another fault
    for param in (toyota_param(), toyota_param(stock_longitudinal=True)):
        checked = {m["addr"] for m in Safety(SafetyMode.TOYOTA, param).tx_table if m["check_relay"] and m["bus"] == 0}
        assert checked and checked <= RELAY_ADDRESSES, sorted(hex(a) for a in checked - RELAY_ADDRESSES)


def test_an_hour_of_soak_garbage_never_latches_the_relay():
    # the hour soak's rate (1 frame per 10 ms step) through the adapter's safety layer, as the soak's adapter
    # takes it: before RELAY_ADDRESSES had STEERING_LTA a wrong-length 0x191 on bus 0 latched it at 245 s
    s = Safety(SafetyMode.TOYOTA, toyota_param())
    g = CanGarbage(PT_DBC, 300_500, 1.0)
    for step in range(360_000):
        for addr, dat, bus in g.frames():
            frame, _ = classify(RawFrame(addr, dat, bus, is_extended=addr > 0x7FF))
            if frame is not None:
                s.rx(frame.address, frame.src, frame.dat, (step + 1) * 10_000)
    assert not s.relay_malfunction
