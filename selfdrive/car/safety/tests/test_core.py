"""roadpilot's rules around opendbc's hooks, for every mode: silent by default, unknown modes and params fail
closed, the heartbeat, frame shapes, the verdict reasons and counters, the rx prefilter, ELM327 for
identification, and the Toyota checks opendbc's toyota.h does not make."""

import pytest
from opendbc.can.packer import CANPacker
from opendbc.car.toyota import toyotacan

from selfdrive.car.safety import Safety, SafetyMode, toyota_param
from selfdrive.car.safety.tests.brands import BRANDS, BrandCar

TOYOTA = next(b for b in BRANDS if b.name == "toyota")
RAV4_PARAM = toyota_param(73, alt_brake=True)  # DSU unplugged: roadpilot does longitudinal control
STEERING_LKA, PRE_COLLISION_2, ACC_CONTROL = 0x2E4, 0x344, 0x343
UDS_VIN_QUERY = bytes.fromhex("0322f19000000000")  # ReadDataByIdentifier 0xF190 (VIN), ISO-TP single frame


def engaged_rav4() -> BrandCar:
    car = BrandCar(TOYOTA)
    car.safety = Safety(SafetyMode.TOYOTA, RAV4_PARAM)
    car.engage()
    assert car.safety.controls_allowed
    return car


class TestModes:
    def test_enum_is_opendbcs_safety_model(self):
        from opendbc.car.structs import CarParams
        numbering = CarParams.SafetyModel.schema.enumerants
        assert len(SafetyMode) == len(numbering)
        assert SafetyMode["SILENT"] == numbering["silent"] == 0 and SafetyMode["ELM327"] == numbering["elm327"] == 3
        assert SafetyMode["TOYOTA"] == 2 and SafetyMode["NO_OUTPUT"] == numbering["noOutput"] == 19
        assert SafetyMode["HONDA_NIDEC"] == 1 and SafetyMode["HYUNDAI_CANFD"] == numbering["hyundaiCanfd"]

    @pytest.mark.parametrize("mode", [SafetyMode.SILENT, SafetyMode.NO_OUTPUT])
    def test_silent_modes_send_nothing(self, mode):
        s = Safety(mode)
        s.heartbeat(0)
        assert s.tx_verdict(0x7E0, 0, UDS_VIN_QUERY, 0) == "MODE"
        assert s.listen_only == (mode == SafetyMode.SILENT)
        assert s.mode == mode

    @pytest.mark.parametrize("mode", [SafetyMode.ALL_OUTPUT, SafetyMode.CADILLAC, SafetyMode.GM_PASSIVE])
    def test_unknown_modes_and_alloutput_leave_the_layer_silent(self, mode):
        Safety(SafetyMode.ELM327)
        with pytest.raises(ValueError, match="unknown mode"):
            Safety(mode)
        s = Safety._active  # the C refused it: whatever the previous mode allowed, it is silent now
        assert s.mode == SafetyMode.SILENT and s.listen_only
        assert s.tx_verdict(0x7E0, 0, UDS_VIN_QUERY, 0) == "MODE"

    def test_a_number_opendbc_does_not_know(self):
        with pytest.raises(ValueError):
            Safety(12345)

    @pytest.mark.parametrize("param", [0x1_0000, 2**32 - 1])
    def test_params_wider_than_opendbcs_are_refused(self, param):
        with pytest.raises(ValueError, match="param"):
            Safety(SafetyMode.TOYOTA, param)
        with pytest.raises(ValueError):
            Safety(SafetyMode.TOYOTA, -1)

    def test_a_replaced_safety_refuses_to_be_used(self):
        old = Safety(SafetyMode.TOYOTA, RAV4_PARAM)
        Safety(SafetyMode.SILENT)
        with pytest.raises(RuntimeError):
            old.tx(STEERING_LKA, 0, bytes(5), 0)


class TestElm327:
    """Identification runs in ELM327 before the car is known: diagnostic queries leave, nothing else."""

    @pytest.mark.parametrize("addr", [0x7DF, 0x7E0, 0x750, 0x18DB33F1, 0x18DA10F1])
    def test_uds_queries_leave(self, addr):
        s = Safety(SafetyMode.ELM327)
        assert s.tx_verdict(addr, 0, UDS_VIN_QUERY, 1_000) == "OK"
        assert s.tx_verdict(addr, 1, UDS_VIN_QUERY, 2_000) == "OK"

    def test_steering_and_short_frames_are_refused(self):
        s = Safety(SafetyMode.ELM327)
        s.heartbeat(0)
        steer = toyotacan.create_steer_command(CANPacker("toyota_new_mc_pt_generated"), 100, True)
        assert s.tx_verdict(steer[0], 0, steer[1], 1_000) == "REFUSED"
        assert s.tx_verdict(0x7E0, 0, UDS_VIN_QUERY[:7], 1_000) == "REFUSED"  # ISO 15765-4: always 8 bytes
        assert s.counters["tx_blocked"] == {"REFUSED": 2}


class TestHeartbeat:
    def test_never_came(self):
        car = BrandCar(TOYOTA)
        car.now += 10_000
        addr, dat, _ = car.packers[0].make_can_msg("PCM_CRUISE", 0, {"CRUISE_ACTIVE": 1, "GAS_RELEASED": 1})
        assert car.safety.rx(addr, 0, dat, car.now)
        assert not car.safety.controls_allowed  # a rising edge of cruise without controlsd is no engagement

    @pytest.mark.parametrize("age_us,verdict", [(1_000_000, "OK"), (1_000_001, "HEARTBEAT")])
    def test_one_second(self, age_us, verdict):
        car = engaged_rav4()
        car.safety.heartbeat(car.now)
        car.now += age_us
        assert car.steer(15) == verdict
        assert car.safety.controls_allowed == (verdict == "OK")

    def test_clock_going_backwards(self):
        car = engaged_rav4()
        car.safety.heartbeat(car.now)
        assert car.safety.tx_verdict(0x7FF, 0, b"", car.now - 1) == "NOT_LISTED"
        assert not car.safety.controls_allowed

    def test_stale_car_messages_end_controls(self):
        """opendbc's 1 Hz timeout check: the car's tracked messages stop, controls end within two seconds."""
        car = engaged_rav4()
        for _ in range(200):
            car.now += 10_000
            car.safety.heartbeat(car.now)
            car.safety.rx(0x123, 0, bytes(8), car.now)
        assert not car.safety.controls_allowed

    def test_the_test_hook_engages_and_the_heartbeat_still_applies(self):
        """set_controls_allowed_for_tests (no brand test needs it: each engages through its own frames)."""
        car = BrandCar(TOYOTA)
        car.step()
        car.safety.set_controls_allowed_for_tests(True)
        assert car.safety.controls_allowed
        assert car.steer(15) == "OK"
        car.now += 1_000_001
        assert car.steer(15) == "HEARTBEAT"
        assert not car.safety.controls_allowed


class TestShape:
    @pytest.mark.parametrize("addr", [-1, 0x2000_0000, 2**40])
    def test_not_a_can_id(self, addr):
        s = Safety(SafetyMode.TOYOTA, RAV4_PARAM)
        assert not s.rx(addr, 0, bytes(8), 0) and s.last_reason == "ADDRESS"
        assert s.tx_verdict(addr, 0, bytes(8), 0) == "ADDRESS"

    @pytest.mark.parametrize("addr", [0, 0x7FF, 0x800, 0x1FFF_FFFF])
    def test_any_can_id_is_a_frame(self, addr):
        s = Safety(SafetyMode.ELM327)
        assert s.rx(addr, 0, bytes(8), 0)
        assert s.tx_verdict(addr, 7, bytes(8), 0) != "ADDRESS"

    @pytest.mark.parametrize("bus", [-1, 8, 128, 2**40])
    def test_not_a_bus(self, bus):
        s = Safety(SafetyMode.TOYOTA, RAV4_PARAM)
        assert not s.rx(0x123, bus, bytes(8), 0) and s.last_reason == "BUS"
        assert s.tx_verdict(STEERING_LKA, bus, bytes(5), 0) == "BUS"

    @pytest.mark.parametrize("length", [9, 13, 63, 65, 200])
    def test_not_a_can_fd_length(self, length):
        s = Safety(SafetyMode.TOYOTA, RAV4_PARAM)
        assert not s.rx(0x123, 0, bytes(length), 0) and s.last_reason == "LENGTH"
        assert s.tx_verdict(STEERING_LKA, 0, bytes(length), 0) == "LENGTH"

    @pytest.mark.parametrize("length", [0, 1, 8, 12, 64])
    def test_untracked_frames_of_any_can_length_pass(self, length):
        s = Safety(SafetyMode.TOYOTA, RAV4_PARAM)
        assert s.rx(0x123, 0, bytes(length), 0)

    def test_not_in_the_modes_table(self):
        car = engaged_rav4()
        assert car.safety.tx_verdict(0x123, 0, bytes(8), car.now) == "NOT_LISTED"
        assert car.safety.tx_verdict(STEERING_LKA, 1, bytes(5), car.now) == "NOT_LISTED"
        assert car.safety.tx_verdict(STEERING_LKA, 0, bytes(8), car.now) == "NOT_LISTED"


class TestRxPrefilter:
    """A tracked message with a bad checksum or length is dropped before opendbc sees it (README, Deviations)."""

    def test_bad_checksum_is_dropped_and_controls_stay(self):
        car = engaged_rav4()
        addr, dat, _ = car.packers[0].make_can_msg("PCM_CRUISE", 0, {"CRUISE_ACTIVE": 0})
        bad = dat[:-1] + bytes([dat[-1] ^ 0xFF])
        assert not car.safety.rx(addr, 0, bad, car.now) and car.safety.last_reason == "CHECKSUM"
        assert car.safety.controls_allowed  # its CRUISE_ACTIVE = 0 was not believed
        assert car.safety.rx(addr, 0, dat, car.now)
        assert not car.safety.controls_allowed  # the valid one was

    def test_wrong_length_is_dropped(self):
        car = engaged_rav4()
        assert not car.safety.rx(0x1D2, 0, bytes(7), car.now) and car.safety.last_reason == "LENGTH"
        assert car.safety.counters["rx_refused"] == {"LENGTH": 1}

    def test_counters(self):
        car = engaged_rav4()
        before = car.safety.counters
        car.safety.rx(-1, 0, b"", car.now)
        car.safety.tx(0x123, 0, b"", car.now)
        assert car.steer(15) == "OK"
        c = car.safety.counters
        assert c["rx_total"] == before["rx_total"] + 1 and c["rx_refused"] == {"ADDRESS": 1}
        assert c["tx_total"] == 2 and c["tx_allowed"] == 1 and c["tx_blocked"] == {"NOT_LISTED": 1}


class TestRelay:
    def test_the_cars_own_steering_frame_latches_a_relay_malfunction(self):
        car = engaged_rav4()
        for _ in range(250):  # opendbc waits two of its 1 Hz ticks after a mode change before judging
            car.step()
        addr, dat, _ = toyotacan.create_steer_command(car.packers[0], 0, False)
        car.safety.rx(addr, 0, dat, car.now)
        assert car.safety.relay_malfunction
        assert car.steer(0) == "RELAY"


class TestToyotaExtras:
    """What roadpilot's own Toyota mode checked and opendbc's toyota.h does not (README, Extra checks)."""

    def test_steer_request_with_zero_torque_while_not_engaged(self):
        car = BrandCar(TOYOTA)
        car.step()
        assert car.steer(0) == "NOT_ALLOWED"
        addr, dat, _ = toyotacan.create_steer_command(car.packers[0], 0, False)
        assert car.safety.tx_verdict(addr, 0, dat, car.now) == "OK"

    def test_bad_checksum(self):
        car = engaged_rav4()
        addr, dat, _ = toyotacan.create_steer_command(car.packers[0], 10, True)
        assert car.safety.tx_verdict(addr, 0, dat[:-1] + bytes([dat[-1] ^ 1]), car.now) == "CHECKSUM"

    def test_repeated_or_jumping_counter(self):
        car = engaged_rav4()
        for counter, verdict in [(10, "OK"), (10, "COUNTER"), (13, "COUNTER"), (15, "OK"), (16, "OK"), (63, "COUNTER"),
                                 (0, "OK")]:
            values = {"STEER_TORQUE_CMD": 5, "STEER_REQUEST": 1, "COUNTER": counter}
            addr, dat, _ = car.packers[0].make_can_msg("STEERING_LKA", 0, values)
            assert car.safety.tx_verdict(addr, 0, dat, car.now) == verdict, counter

    def test_pre_collision_2_never_brakes(self):
        car = engaged_rav4()
        addr, dat, _ = car.packers[0].make_can_msg("PRE_COLLISION_2", 0, {})
        assert car.safety.tx_verdict(addr, 0, dat, car.now) == "OK"
        addr, dat, _ = car.packers[0].make_can_msg("PRE_COLLISION_2", 0, {"PBATRGR": 1})
        assert car.safety.tx_verdict(addr, 0, dat, car.now) == "PAYLOAD"


class TestPlatforms:
    def test_every_opendbc_platform_gets_a_mode_the_layer_accepts(self):
        """get_params with an empty fingerprint, as card builds CarParams for a forced platform: every
        safety config of every platform (MOCK aside) is a mode and param the C takes, and steers nothing
        until engaged."""
        from opendbc.car import gen_empty_fingerprint
        from opendbc.car.car_helpers import interfaces

        seen = set()
        for platform, CI in sorted(interfaces.items()):
            if platform == "MOCK":
                continue
            CP = CI.get_params(platform, gen_empty_fingerprint(), [], False, False, False)
            assert len(CP.safetyConfigs) > 0, platform
            for cfg in CP.safetyConfigs:
                mode = SafetyMode(cfg.safetyModel.raw)
                s = Safety(mode, int(cfg.safetyParam))  # raises ValueError if refused
                assert s.mode == mode and s.param == cfg.safetyParam, platform
                assert not s.controls_allowed
                if mode not in (SafetyMode.NO_OUTPUT, SafetyMode.SILENT):
                    assert s.tx_table, f"{platform}: {mode.name} may send nothing"
                seen.add(mode.name)
        assert len(interfaces) > 200 and {"TOYOTA", "HONDA_BOSCH", "HYUNDAI_CANFD", "PSA", "VOLKSWAGEN_PQ"} <= seen
