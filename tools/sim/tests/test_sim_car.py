"""The simulated car on its CAN bus (each of SIM_PLATFORMS): opendbc's car state reads it as the car it
simulates, and the car reacts to the car port's commands the way the brief of the real car says (refusing them
unengaged)."""

import numpy as np
import pytest
from opendbc.can import CANPacker
from opendbc.car.common.conversions import Conversions as CV

from selfdrive.car.car_logic import CarLogic
from selfdrive.car.car_specific import CarSetup, build_plan
from selfdrive.car.fingerprinting import Fingerprinter
from tools.sim.lib.sim_car import (
    LKA_FAULT,
    LKA_FULL_UNITS,
    MIN_ACC_SPEED,
    PT_DBC,
    SCHEDULE,
    SIM_PLATFORMS,
    DriverControls,
    Motion,
    SimCar,
    sim_platform,
)

DT = 0.01


class Bench:
    """A SimCar stepped at 100 Hz with a stand-in for the car port: STEERING_LKA every step and
    ACC_CONTROL every 3rd, packed with opendbc's packer like the real port does."""

    def __init__(self, acc_module: bool = True, car: str = "LEXUS_CTH"):
        self.car = SimCar(sim_platform(car))
        self.port = CANPacker(PT_DBC)
        self.k = 0
        self.acc_module = acc_module
        self.torque, self.request, self.accel, self.cancel = 0, False, 0.0, False

    def commands(self) -> list:
        out = [self.port.make_can_msg("STEERING_LKA", 0, {"STEER_REQUEST": int(self.request),
                                                         "STEER_TORQUE_CMD": self.torque, "SET_ME_1": 1})]
        if self.acc_module and self.k % 3 == 0:
            out.append(self.port.make_can_msg("ACC_CONTROL", 0, {
                "ACCEL_CMD": self.accel, "PERMIT_BRAKING": 1, "RELEASE_STANDSTILL": 1,
                "CANCEL_REQ": int(self.cancel)}))
        return out

    def step(self, motion: Motion, driver: DriverControls, commands: list | None = None):
        self.k += 1
        t = self.k * DT
        self.car.receive(self.commands() if commands is None else commands, t)
        act = self.car.update(t, motion, driver)
        return act, self.car.frames(self.k * 10)

    def hold(self, seconds: float, motion: Motion, driver: DriverControls | None = None):
        driver = driver or DriverControls()
        out = None
        for _ in range(round(seconds / DT)):
            out = self.step(motion, driver)
        return out

    def press(self, button: str, motion: Motion):
        self.hold(0.2, motion, DriverControls(**{button: True}))
        return self.hold(0.2, motion)


def engaged_bench(v: float = 25.0) -> Bench:
    b = Bench()
    m = Motion(v=v)
    b.press("main", m)
    b.press("set", m)
    assert b.car.status.engaged
    return b


@pytest.fixture(params=list(SIM_PLATFORMS))
def car(request) -> str:
    return request.param


class TestCarStateReadsTheSimulatedCar:
    """card's CarLogic (opendbc's CarInterface for the simulated platform behind card's frame checks) on the sim's
    CAN, for each car the simulator can be."""

    @pytest.fixture(autouse=True)
    def bench_and_logic(self, car):
        self.bench = Bench(car=car)
        fp = Fingerprinter(car)
        self.packets = []
        while not fp.done:
            _, frames = self.bench.step(Motion(v=20.0), DriverControls())
            self.packets.append(frames)
            fp.add(frames)
        self.plan = build_plan(fp.result(), CarSetup())
        self.logic = CarLogic(self.plan)

    def feed(self, motion: Motion, driver: DriverControls | None = None, seconds: float = 1.0):
        driver = driver or DriverControls()
        CS = None
        for _ in range(round(seconds / DT)):
            _, frames = self.bench.step(motion, driver)
            CS = self.logic.update([(int(self.bench.k * DT * 1e9), frames)])
        return CS

    def test_installation_is_seen_as_the_car_without_dsu(self, car):
        assert self.plan.CP.carFingerprint == car
        assert self.plan.connected_buses == frozenset({0, 2})
        assert self.plan.CP.openpilotLongitudinalControl  # the DSU is unplugged: we send ACC_CONTROL

    def test_the_cars_stop_and_go_is_what_opendbc_says(self, car):
        # opendbc's minEnableSpeed is the stack's idea of the car: below it selfdrived will not stay engaged
        assert sim_platform(car).stop_and_go == (self.plan.CP.minEnableSpeed < 0)

    @pytest.mark.parametrize("v, steer", [(0.0, 0.0), (8.3, -12.34), (20.0, 3.21), (33.0, 87.6), (15.0, -400.0)])
    def test_speed_and_angle(self, v, steer):
        CS = self.feed(Motion(v=v, steer_deg=steer, yaw_rate=0.02 if v else 0.0), seconds=1.5)
        assert CS.canValid and not self.logic.problems
        assert CS.canErrorCounter == 0
        assert CS.vEgoRaw == pytest.approx(v, abs=0.01)
        assert CS.steeringAngleDeg == pytest.approx(steer, abs=0.051)  # 1.5 deg + 0.1 deg fraction encoding
        assert CS.standstill == (v == 0.0)
        assert CS.gearShifter == "drive"
        assert not (CS.doorOpen or CS.seatbeltUnlatched or CS.parkingBrake or CS.espDisabled)

    def test_no_bus_ever_times_out(self):
        # opendbc times a bus out after 500 ms without a frame: the camera bus (2) must stay busy too
        m, timeouts = Motion(v=20.0), 0
        for _ in range(300):
            _, frames = self.bench.step(m, DriverControls())
            CS = self.logic.update([(int(self.bench.k * DT * 1e9), frames)])
            timeouts += CS.canTimeout
        assert timeouts == 0 and CS.canValid and not self.logic.problems

    def test_pedals_and_driver_torque(self):
        CS = self.feed(Motion(v=15.0), DriverControls(gas=0.4, steer_torque=2.5))
        assert CS.gasPressed and not CS.brakePressed
        assert CS.steeringPressed and CS.steeringTorque == pytest.approx(125, abs=1)
        CS = self.feed(Motion(v=15.0), DriverControls(brake=0.3))
        assert CS.brakePressed and not CS.gasPressed and not CS.steeringPressed

    def test_cruise_state_follows_the_buttons(self):
        m = Motion(v=25.0)
        CS = self.feed(m)
        assert not CS.cruiseState.available and not CS.cruiseState.enabled
        self.feed(m, DriverControls(main=True), 0.2)
        CS = self.feed(m)
        assert CS.cruiseState.available and not CS.cruiseState.enabled
        self.feed(m, DriverControls(set=True), 0.2)
        CS = self.feed(m)
        assert CS.cruiseState.enabled
        assert CS.cruiseState.speed == pytest.approx(90 * CV.KPH_TO_MS, abs=0.01)
        self.feed(m, DriverControls(resume=True), 0.2)
        CS = self.feed(m)
        assert CS.cruiseState.speed == pytest.approx(91 * CV.KPH_TO_MS, abs=0.01)
        CS = self.feed(m, DriverControls(brake=0.2), 0.5)
        assert not CS.cruiseState.enabled and CS.cruiseState.available

    def test_eps_torque_reported_in_command_units(self):
        self.feed(Motion(v=25.0), DriverControls(main=True), 0.2)
        self.feed(Motion(v=25.0), DriverControls(set=True), 0.2)
        self.bench.torque, self.bench.request = 400, True
        CS = self.feed(Motion(v=25.0))  # the motor delivers what the command asks
        assert not CS.steerFaultTemporary and not CS.steerFaultPermanent
        assert CS.steeringTorqueEps == pytest.approx(400, abs=1)  # opendbc scales by EPS_SCALE: back to units


class TestCarReactsToCommands:
    def test_engaging_needs_main_speed_brake_off_and_an_acc_module(self):
        b = Bench(car="TOYOTA_RAV4")
        b.press("set", Motion(v=25.0))
        assert not b.car.status.engaged  # main is off
        b.press("main", Motion(v=25.0))
        b.press("set", Motion(v=MIN_ACC_SPEED - 0.5))
        assert not b.car.status.engaged  # too slow for a TSS-P car without stop-and-go
        b.hold(0.2, Motion(v=25.0), DriverControls(set=True, brake=0.5))
        assert not b.car.status.engaged
        nobody = Bench(acc_module=False)
        nobody.press("main", Motion(v=25.0))
        nobody.press("set", Motion(v=25.0))
        assert nobody.car.status.main_on and not nobody.car.status.engaged  # nothing sends ACC_CONTROL
        sng = Bench(car="LEXUS_CTH")
        sng.press("main", Motion(v=3.0))
        sng.press("set", Motion(v=3.0))
        assert sng.car.status.engaged and sng.car.status.set_speed_kph == 30  # full-speed range: any speed

    def test_commands_are_refused_while_not_engaged(self):
        b = Bench()
        b.torque, b.request, b.accel = 800, True, 1.5
        b.press("main", Motion(v=25.0))
        act, _ = b.hold(0.5, Motion(v=25.0))
        assert act.eps_torque == 0.0 and not act.accel_active
        assert b.car.status.lka_state == 1  # standby
        b.press("set", Motion(v=25.0))
        act, _ = b.hold(0.1, Motion(v=25.0))
        assert act.eps_torque == pytest.approx(800 / LKA_FULL_UNITS)
        assert act.accel_active and act.accel == pytest.approx(1.5)
        assert b.car.status.lka_state == 5

    @pytest.mark.parametrize("how", ["cancel_button", "cancel_req", "brake", "main_off", "acc_silent"])
    def test_every_way_out_of_the_cruise(self, how):
        b = engaged_bench()
        b.request, b.torque, b.accel = True, 300, 0.5
        m = Motion(v=25.0)
        if how == "cancel_button":
            b.press("cancel", m)
        elif how == "cancel_req":
            b.cancel = True
            b.hold(0.1, m)
        elif how == "brake":
            b.hold(0.1, m, DriverControls(brake=0.1))
        elif how == "main_off":
            b.press("main", m)
        else:
            b.acc_module = False
            b.hold(0.6, m)
        assert not b.car.status.engaged
        act, _ = b.hold(0.05, m)
        assert act.eps_torque == 0.0 and not act.accel_active

    def test_gas_overrides_without_disengaging(self):
        b = engaged_bench()
        b.accel = -1.0
        act, _ = b.hold(0.1, Motion(v=25.0), DriverControls(gas=0.5))
        assert b.car.status.engaged and act.accel_active
        assert act.accel == 0.0 and act.gas == 0.5  # no cruise braking against the driver's foot
        act, _ = b.hold(0.1, Motion(v=25.0))
        assert act.accel == pytest.approx(-1.0) and act.gas == 0.0

    def test_driver_torque_adds_to_the_eps(self):
        b = engaged_bench()
        b.request, b.torque = True, 500
        act, _ = b.hold(0.1, Motion(v=25.0), DriverControls(steer_torque=-1.0))
        assert act.eps_torque == pytest.approx(500 / LKA_FULL_UNITS) and act.driver_torque == -1.0

    @pytest.mark.parametrize("gain", [0.5, 2.0])
    def test_a_car_unlike_its_parameters_steers_with_its_own_gain_and_delay(self, gain):
        # the steering of this car answers the torque `gain` times as much, 0.1 s (10 steps) later than the
        # parameters say; its motor delivers, and its sensor reports, the torque asked
        b = engaged_bench()
        b.car = SimCar(b.car.platform, steer_gain=gain, steer_delay_steps=10)
        b.press("main", Motion(v=25.0))
        b.press("set", Motion(v=25.0))
        b.request, b.torque = True, 300
        steps = [b.step(Motion(v=25.0), DriverControls()) for _ in range(15)]
        applied = [act.eps_torque for act, _ in steps]
        assert applied[:10] == [0.0] * 10   # the first command takes effect 10 steps later
        assert applied[10:] == [pytest.approx(gain * 300 / LKA_FULL_UNITS)] * 5
        reported = b.car._v_steer_torque_sensor()["STEER_TORQUE_EPS"] * b.car.platform.eps_report_scale
        assert reported == pytest.approx(300)  # opendbc's limits hold the command near this: it must be the motor's

    def test_command_drop_out_faults_the_eps_for_two_seconds(self):
        b = engaged_bench()
        b.request, b.torque = True, 300
        b.hold(0.2, Motion(v=25.0))
        for _ in range(10):  # STEERING_LKA stops, ACC_CONTROL goes on
            b.step(Motion(v=25.0), DriverControls(), commands=[c for c in b.commands() if c[0] == 0x343])
        assert b.car.status.lka_state == LKA_FAULT
        act, _ = b.hold(1.5, Motion(v=25.0))
        assert act.eps_torque == 0.0 and b.car.status.lka_state == LKA_FAULT
        act, _ = b.hold(0.6, Motion(v=25.0))
        assert act.eps_torque > 0 and b.car.status.lka_state == 5

    def test_torque_at_high_steering_rate_faults_the_eps(self):
        b = engaged_bench()
        b.request, b.torque = True, 300
        b.hold(0.3, Motion(v=25.0, steer_rate_deg=150.0))
        assert b.car.status.lka_state == LKA_FAULT

    def test_standstill_hold_and_release(self):
        b = engaged_bench()
        b.accel = -0.5
        act, _ = b.hold(0.1, Motion(v=0.0))
        assert b.car.status.standstill and act.accel <= -1.0
        b.accel = 0.8
        act, _ = b.hold(0.1, Motion(v=0.0))
        assert not b.car.status.standstill and act.accel == pytest.approx(0.8)


class TestBadCommands:
    def _engaged_with(self, frame):
        b = engaged_bench()
        b.request, b.torque = True, 200
        b.hold(0.1, Motion(v=25.0))
        before = dict(b.car.status.refused)
        b.car.receive([frame], b.k * DT)
        return b, {k: v - before.get(k, 0) for k, v in b.car.status.refused.items()}

    def test_bad_checksum_wrong_length_and_repeated_counter_are_ignored(self):
        port = CANPacker(PT_DBC)
        addr, dat, bus = port.make_can_msg("STEERING_LKA", 0, {"STEER_REQUEST": 1, "STEER_TORQUE_CMD": 1500})
        bad = bytes(dat[:-1]) + bytes([(dat[-1] + 1) & 0xFF])
        b, refused = self._engaged_with((addr, bad, 0))
        assert refused == {"STEERING_LKA:checksum": 1}
        b, refused = self._engaged_with((addr, bytes(dat) + b"\0", 0))
        assert refused == {"STEERING_LKA:length": 1}
        # the same frame twice: the second is a replay, not a new command
        b = engaged_bench()
        b.car.receive([(addr, dat, 0), (addr, dat, 0)], b.k * DT)
        assert b.car.status.refused == {"STEERING_LKA:counter": 1}

    def test_commands_on_other_buses_do_not_reach_the_car(self):
        port = CANPacker(PT_DBC)
        b = engaged_bench()
        frames = [port.make_can_msg("STEERING_LKA", bus, {"STEER_REQUEST": 1, "STEER_TORQUE_CMD": 500})
                  for bus in (1, 2, 128)]
        for k in range(5):
            b.car.receive(frames, (b.k + k) * DT)
        act = b.car.update((b.k + 5) * DT, Motion(v=25.0), DriverControls())
        assert act.eps_torque == 0.0


def test_message_rates_follow_the_schedule_and_the_real_car():
    b = Bench()
    counts: dict[int, int] = {}
    for _ in range(1000):
        _, frames = b.step(Motion(v=20.0), DriverControls())
        for addr, _, bus in frames:
            counts[(addr, bus)] = counts.get((addr, bus), 0) + 1
    dbc = b.car.dbc
    for m in SCHEDULE:
        n = counts.get((dbc.name_to_msg[m.name].address, m.bus), 0)
        assert n == pytest.approx(10_000 / m.period_ms, abs=1.01), m.name
    # the real drive's rates (bus 0), where the data is present
    from selfdrive.car.tests.helpers import have_data, real_frames
    if not have_data():
        pytest.skip("real data not present")
    real = real_frames()
    span = real[-1][0] - real[0][0]
    for m in SCHEDULE:
        addr = dbc.name_to_msg[m.name].address
        real_hz = sum(1 for f in real if f[1] == 0 and f[2] == addr) / span
        if m.bus == 0 and real_hz > 1.5:
            assert 1000 / m.period_ms == pytest.approx(real_hz, rel=0.12), m.name


def test_wheel_speeds_split_left_and_right_in_turns():
    b = Bench()
    _, frames = b.hold(0.1, Motion(v=10.0, yaw_rate=0.5))
    from tools.sim.lib.sim_car import decode
    ws = [decode(b.car.dbc, a, d)[0] for a, d, _ in b.car.frames(b.k * 10 + 12) if a == 0xAA]
    assert ws, "WHEEL_SPEEDS is due every 12 ms"
    w = ws[0]
    assert w["WHEEL_SPEED_FR"] > w["WHEEL_SPEED_FL"]  # turning left: the right wheels run faster
    assert np.mean(list(w.values())) == pytest.approx(10.0 * CV.MS_TO_KPH, abs=0.02)


def test_an_unknown_car_is_refused_naming_the_known_ones():
    from tools.sim.lib.simulation import SimConfig
    with pytest.raises(ValueError, match="LEXUS_CTH, TOYOTA_RAV4"):
        SimConfig(car="HONDA_CIVIC")
