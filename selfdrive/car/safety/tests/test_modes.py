"""Mode registry: the C ids follow the one Python declaration, unknown modes and params fail closed."""

import pytest

from selfdrive.car.safety import Safety, SafetyMode, load_module, toyota_param
from selfdrive.car.safety.tests.toyota_frames import PCM_CRUISE, STEERING_LKA, pcm_cruise, steer


class _Lazy:
    """The loaded module's lib, looked up at use: importing this file must not load the C module
    (tools/safety_mutation.py imports the tests before it picks which build to load)."""

    def __getattr__(self, name: str):
        return getattr(load_module().lib, name)


lib = _Lazy()


def c_str(p) -> str:
    return load_module().ffi.string(p).decode()


class TestRegistry:
    def test_c_ids_match_the_python_enum(self):
        assert {m.name: m.value for m in SafetyMode} == {
            "SILENT": lib.SAFETY_MODE_SILENT, "TOYOTA": lib.SAFETY_MODE_TOYOTA, "NO_OUTPUT": lib.SAFETY_MODE_NO_OUTPUT}

    def test_registry_holds_exactly_the_enum(self):
        ids = [lib.safety_mode_at(i) for i in range(lib.safety_mode_count())]
        assert sorted(ids) == sorted(m.value for m in SafetyMode)
        assert {c_str(lib.safety_mode_name(i)) for i in ids} == {m.name.lower() for m in SafetyMode}

    @pytest.mark.parametrize("index", [-1, 3, 1000])
    def test_registry_out_of_range(self, index):
        assert lib.safety_mode_count() == 3
        assert lib.safety_mode_at(index) == lib.SAFETY_MODE_INVALID

    def test_ids_follow_opendbc_numbering(self):
        from opendbc.car.structs import CarParams
        numbering = CarParams.SafetyModel.schema.enumerants
        assert numbering["silent"] == SafetyMode.SILENT
        assert numbering["toyota"] == SafetyMode.TOYOTA
        assert numbering["noOutput"] == SafetyMode.NO_OUTPUT

    def test_names(self):
        assert c_str(lib.safety_mode_name(12345)) == "unknown"
        assert c_str(lib.safety_reason_name(0)) == "OK"
        assert c_str(lib.safety_reason_name(lib.SAFETY_REASON_COUNT - 1)) == "ACCEL_RANGE"
        assert c_str(lib.safety_reason_name(-1)) == "UNKNOWN"
        assert c_str(lib.safety_reason_name(lib.SAFETY_REASON_COUNT)) == "UNKNOWN"


class TestFailClosed:
    def test_unknown_mode_is_silent(self):
        Safety(SafetyMode.TOYOTA, toyota_param())
        assert lib.safety_set_mode(1234, 0) == lib.SAFETY_SET_UNKNOWN_MODE
        assert lib.safety_get_mode() == SafetyMode.SILENT
        assert lib.safety_tx(STEERING_LKA, 0, steer(0, False), 5, 0) == lib.SAFETY_MODE
        with pytest.raises(ValueError):
            Safety(77)

    @pytest.mark.parametrize("param", [0, 0x100, 0x400 | 73, 0x800 | 73, 0x1000 | 73, 0x8000_0000 | 73])
    def test_unsupported_toyota_param_is_silent(self, param):
        with pytest.raises(ValueError, match="not supported"):
            Safety(SafetyMode.TOYOTA, param)
        assert lib.safety_get_mode() == SafetyMode.SILENT
        assert lib.safety_tx(STEERING_LKA, 0, steer(0, False), 5, 0) == lib.SAFETY_MODE

    @pytest.mark.parametrize("param", [1, 73, 255, 73 | 0x100, 73 | 0x200, 73 | 0x300])
    def test_supported_toyota_params(self, param):
        assert Safety(SafetyMode.TOYOTA, param).mode == SafetyMode.TOYOTA

    @pytest.mark.parametrize("eps_scale", [0, 256])
    def test_toyota_param_helper_rejects_bad_scale(self, eps_scale):
        with pytest.raises(ValueError):
            toyota_param(eps_scale)

    def test_toyota_param_layout(self):
        assert toyota_param(73, alt_brake=True, stock_longitudinal=True) == 73 | 0x100 | 0x200
        assert toyota_param(88) == 88

    def test_replaced_instance_refuses_use(self):
        old = Safety(SafetyMode.TOYOTA, toyota_param())
        Safety(SafetyMode.SILENT)
        with pytest.raises(RuntimeError):
            old.tx(STEERING_LKA, 0, steer(0, False), 0)


class TestOutputlessModes:
    @pytest.mark.parametrize("mode,listen_only", [(SafetyMode.SILENT, True), (SafetyMode.NO_OUTPUT, False)])
    def test_refuse_every_frame(self, mode, listen_only):
        s = Safety(mode)
        assert s.mode == mode and s.listen_only == listen_only
        s.heartbeat(0)
        assert s.rx(PCM_CRUISE, 0, pcm_cruise(True), 0)
        assert not s.controls_allowed
        for addr, data in [(STEERING_LKA, steer(0, False)), (0x123, b""), (0x7FF, bytes(8))]:
            assert not s.tx(addr, 0, data, 1)
            assert s.last_reason == "MODE"
        assert s.counters == {"rx_total": 1, "rx_refused": {}, "tx_total": 3, "tx_allowed": 0,
                              "tx_blocked": {"MODE": 3}}

    def test_toyota_is_not_listen_only(self):
        assert not Safety(SafetyMode.TOYOTA, toyota_param()).listen_only
