"""CAN backends: URL parsing, what counts as garbage, python-can (virtual bus), replay of recordings, and
the not-built `sim` backend failing clearly."""

import time

import can
import numpy as np
import pytest
from opendbc.car.can_definitions import CanData

from hardware.can_backends import (
    BackendError,
    PythonCanBackend,
    RawFrame,
    ReplayBackend,
    classify,
    open_backend,
    parse_channels,
    parse_url,
)
from selfdrive.car.tests.helpers import (
    PT_DBC,
    RAW,
    REPLAY_DBCS,
    SKIP_REASON,
    have_data,
    open_gate,
    write_recording,
)


class TestUrls:
    def test_parse(self):
        assert parse_url("socketcan:can0?bitrate=500000") == ("socketcan", "can0", {"bitrate": "500000"})
        assert parse_url("sim") == ("sim", "", {})
        assert parse_url("replay:/a/b?rate=2&dbc=x") == ("replay", "/a/b", {"rate": "2", "dbc": "x"})

    def test_channels(self):
        assert parse_channels("can0,can1") == {0: "can0", 1: "can1"}
        assert parse_channels("0=can0,2=can1") == {0: "can0", 2: "can1"}

    @pytest.mark.parametrize("rest", ["", "0=a,0=b", "x=can0", "200=can0"])
    def test_bad_channels(self, rest):
        with pytest.raises(BackendError):
            parse_channels(rest)

    @pytest.mark.parametrize("url", [":can0", "nosuchinterface:x", "socketcan:can0", "slcan:/dev/nonexistent",
                                     "replay:", "replay:/nonexistent/path", "virtual:"])
    def test_unusable_backends_raise_backend_error_only(self, url):
        with pytest.raises(BackendError):
            open_backend(url)


class TestClassify:
    @pytest.mark.parametrize("raw, why", [
        (RawFrame(0x123, b"", 0, is_error=True), "error_frame"),
        (RawFrame(0x123, b"", 0, is_remote=True), "remote_frame"),
        (RawFrame(0x800, b"\x00", 0), "bad_address"),
        (RawFrame(-1, b"\x00", 0), "bad_address"),
        (RawFrame(0x20000000, b"\x00", 0, is_extended=True), "bad_address"),
        (RawFrame(0x123, bytes(9), 0), "bad_length"),
        (RawFrame(0x123, bytes(9), 0, is_fd=True), "bad_length"),
        (RawFrame(0x123, bytes(65), 0, is_fd=True), "bad_length"),
        (RawFrame(0x123, bytes(8), 128), "bad_bus"),
    ])
    def test_garbage(self, raw, why):
        assert classify(raw) == (None, why)

    @pytest.mark.parametrize("raw", [RawFrame(0x7FF, bytes(8), 0), RawFrame(0x18DAF110, b"\x01", 2, is_extended=True),
                                     RawFrame(0x123, bytes(64), 1, is_fd=True), RawFrame(0, b"", 127)])
    def test_good(self, raw):
        frame, why = classify(raw)
        assert why is None and type(frame) is CanData and frame == CanData(raw.address, bytes(raw.dat), raw.src)


class TestPythonCan:
    def test_virtual_buses_map_channels_to_bus_numbers(self):
        b = open_backend("virtual:0=tvc_a,2=tvc_b")
        car_a = can.Bus(interface="virtual", channel="tvc_a")
        car_b = can.Bus(interface="virtual", channel="tvc_b")
        try:
            assert isinstance(b, PythonCanBackend)
            car_a.send(can.Message(arbitration_id=0x1D2, data=b"\x01\x02", is_extended_id=False))
            car_b.send(can.Message(arbitration_id=0x412, data=bytes(8), is_extended_id=False))
            car_b.send(can.Message(arbitration_id=0x923, data=bytes(8), is_extended_id=False))  # garbage gets through
            car_b.send(can.Message(arbitration_id=0x123, data=bytes(12), is_extended_id=False))
            got = b.recv()
            assert [(f.address, f.src) for f in got] == [(0x1D2, 0), (0x412, 2), (0x923, 2), (0x123, 2)]
            assert [classify(f)[1] for f in got] == [None, None, "bad_address", "bad_length"]
            b.send(CanData(0x2E4, b"\x01\x00\x00\x00\x00", 2))
            m = car_b.recv(1.0)
            assert m is not None and m.arbitration_id == 0x2E4 and bytes(m.data) == b"\x01\x00\x00\x00\x00"
            assert b.recv() == []
            with pytest.raises(BackendError, match="no channel for bus 1"):
                b.send(CanData(0x2E4, b"", 1))
        finally:
            b.close()
            car_a.shutdown()
            car_b.shutdown()


def synthetic(tmp_path):
    frames = [(10.0 + 0.01 * k, 0, 0x1D2, bytes([k % 255 + 1, 0, 0, 0, 0, 0, 0, 0])) for k in range(100)]
    frames += [(10.005, 128, 0x2E4, b"\x01\x02\x03\x04\x05"), (10.5, 1, 0x228, b"\x07")]
    return write_recording(tmp_path / "rec", frames)


class TestReplay:
    def test_paced_from_start_and_skips_recorded_transmissions(self, tmp_path):
        rec = synthetic(tmp_path)
        assert open_backend(f"replay:{rec}?start={time.monotonic() + 60}").recv() == []  # not started yet
        b = open_backend(f"replay:{rec}?start={time.monotonic() - 0.1}&rate=2&dbc0={PT_DBC}")
        assert isinstance(b, ReplayBackend) and b.skipped_sent == 1
        before = time.monotonic() - b.start
        first = b.recv()
        after = time.monotonic() - b.start
        # exactly the frames due at the moment of the call: recorded time / rate <= time since start
        assert np.searchsorted(b.times, before, "right") <= len(first) <= np.searchsorted(b.times, after, "right")
        assert len(first) >= 20 and all(f.src == 0 for f in first)
        time.sleep(max(0.0, b.span - (time.monotonic() - b.start)) + 0.02)
        rest = b.recv()
        assert len(first) + len(rest) == 101 and b.finished and b.recv() == []
        assert (0x228, 1) in [(f.address, f.src) for f in rest]
        assert all(len(f.dat) == 8 for f in first + rest if f.address == 0x1D2)  # zeros restored from the DBC
        b.send(CanData(0x2E4, b"", 0))  # nowhere to go, no error

    def test_gate_holds_the_replay_until_it_opens(self, tmp_path):
        gate = tmp_path / "gate"
        b = open_backend(f"replay:{synthetic(tmp_path)}?gate={gate}")
        time.sleep(0.05)
        assert b.recv() == [] and b.start is None
        open_gate(gate, lead_s=-0.5)  # started half a second ago
        got = b.recv()
        assert 50 <= len(got) <= np.searchsorted(b.times, time.monotonic() - b.start, "right")
        with pytest.raises(BackendError, match="not both"):
            open_backend(f"replay:{synthetic(tmp_path)}?gate={gate}&start=0")

    def test_a_gate_without_a_time_starts_now(self, tmp_path):
        (tmp_path / "gate").write_text("go")
        b = open_backend(f"replay:{synthetic(tmp_path)}?gate={tmp_path / 'gate'}")
        before = time.monotonic()
        got = b.recv()
        after = time.monotonic()
        # the replay starts at the call that found the gate open, and gives only what was due since then
        # (bounded by the clock, not by a wall-time guess: a loaded machine may take a while in between)
        assert before <= b.start <= after
        assert len(got) <= np.searchsorted(b.times, after - b.start, "right")

    def test_without_dbc_the_lost_lengths_stay_lost(self, tmp_path):
        b = open_backend(f"replay:{synthetic(tmp_path)}?start=0")
        assert {len(f.dat) for f in b.recv() if f.address == 0x1D2} == {1}

    def test_offset_duration_rate_loop(self, tmp_path):
        path = synthetic(tmp_path)
        b = open_backend(f"replay:{path}?start=0&offset=0.2&duration=0.3")
        assert len(b.recv()) == 30
        b = open_backend(f"replay:{path}?rate=100&loop=1")
        time.sleep(0.05)
        assert len(b.recv()) > 101  # a 1 s recording at 100x, looped, within 50 ms

    @pytest.mark.parametrize("opts", ["rate=0", "rate=x", "bogus=1", "offset=100"])
    def test_bad_options(self, tmp_path, opts):
        with pytest.raises(BackendError):
            open_backend(f"replay:{synthetic(tmp_path)}?{opts}")

    def test_not_a_recording(self, tmp_path):
        (tmp_path / "empty").mkdir()
        with pytest.raises(BackendError):
            open_backend(f"replay:{tmp_path / 'empty'}")
        with pytest.raises(BackendError):
            write_recording(tmp_path / "sent", [(0.0, 128, 0x2E4, b"\x01")])
            open_backend(f"replay:{tmp_path / 'sent'}")

    @pytest.mark.skipif(not have_data(), reason=SKIP_REASON)
    def test_real_recording_gets_dbc_lengths(self):
        b = open_backend(f"replay:{RAW}?start=0&{REPLAY_DBCS}")
        frames = b.recv()
        assert len(frames) == 53800 + 45000 and b.skipped_sent == 12434 + 24234
        lengths = {(f.src, f.address): len(f.dat) for f in frames}
        assert lengths[(0, 0x228)] == 4 and lengths[(0, 0x262)] == 5 and lengths[(0, 0xAA)] == 8
        assert all(classify(f)[1] is None for f in frames)
        assert np.all(np.diff(b.times) >= 0)
