"""CAN logs into canbridged: each format python-can writes here (candump .log, Vector .asc/.blf, PEAK .trc,
python-can .csv/.db), written by the test with python-can's writers plus the formats' edge cases (comments, error
and remote frames, CAN FD, extended ids, the logger's own Tx frames), plays through the replay backend on a
stepped clock into canbridged's logic and then card's: the frames come out in time order with their addresses,
data and buses, garbage is counted, and carState is the car that was written. Logs cut short, empty or foreign
are one-line BackendErrors, and canbridged exits 2 with the reason. Two processes talk over udp_multicast."""

import gzip
import json
import os
import random
import subprocess
import sys
import time

import pytest
from opendbc.car.can_definitions import CanData

from hardware.can_backends import BackendError, open_backend
from hardware.can_logs import CanLogError, parse_bus_map, read_can_log
from hardware.canbridged import CanBridge
from hardware.tests.can_log_files import (
    BRAKE_AT,
    CANDUMP_BUSES,
    DRIVE_S,
    EDGE_CASES,
    T0,
    WRITTEN,
    Rec,
    expected,
    rav4_drive,
    replay_url,
    write_log,
)
from selfdrive.car.car_specific import CarSetup
from selfdrive.car.tests.helpers import REPO, SyntheticRav4, car_logic_for, start

SETUP = CarSetup(dsu="absent", buses=frozenset({0}))  # the synthetic car is bus 0 only
START = 1000.0  # the stepped clock's second at which replays start


@pytest.fixture(scope="module")
def drive() -> list[Rec]:
    return rav4_drive(SyntheticRav4()) + EDGE_CASES


def play(url: str, monkeypatch) -> tuple[CanBridge, list[tuple[int, list[CanData]]]]:
    """The replay through canbridged's logic, 10 ms at a time on a stepped clock (as canbridged's loop takes it):
    the bridge and the `can` packets (end of the window in ns, frames) card would get."""
    clock = [START]
    sep = "&" if "?" in url else "?"
    bridge = CanBridge(open_backend(f"{url}{sep}start={START}"))
    packets = []
    with monkeypatch.context() as m:
        m.setattr(time, "monotonic", lambda: clock[0])
        while not bridge.backend.finished:
            clock[0] += 0.01
            frames = bridge.receive(round(clock[0] * 1e6))
            packets.append((round(clock[0] * 1e9), frames))
    return bridge, packets


class TestFormats:
    @pytest.mark.parametrize("suffix", WRITTEN)
    def test_frames_in_time_order_and_card_sees_the_car(self, tmp_path, monkeypatch, drive, suffix):
        path = write_log(tmp_path / f"drive{suffix}", drive)
        bridge, packets = play(replay_url(path), monkeypatch)
        frames, garbage, sent = expected(suffix, drive)
        assert [f for _, fs in packets for f in fs] == frames
        assert dict(bridge.rx_garbage) == garbage and bridge.backend.skipped_sent == sent
        assert len(packets) >= DRIVE_S * 100 - 1  # paced: one 10 ms window after another, as recorded

        logic, used = car_logic_for(packets, setup=SETUP)
        states = [(t, logic.update([(t, fs)])) for t, fs in packets[used:]]
        braking = [cs.brakePressed for t, cs in states]
        cs = states[-1][1]
        assert cs.canValid and cs.cruiseState.enabled and abs(cs.vEgoRaw - 50 / 3.6) < 0.05
        # the brake as written: released until BRAKE_AT, pressed after (one window of slack at the edge)
        edge = round(START * 1e9 + BRAKE_AT * 1e9)
        assert not any(b for (t, _), b in zip(states, braking, strict=True) if t < edge) and braking[-1]
        assert sum(braking) >= round((states[-1][0] - edge) / 1e7)

    @pytest.mark.parametrize("suffix", [".csv", ".blf"])
    def test_frames_written_out_of_time_order_come_out_in_order(self, tmp_path, suffix):
        recs = [Rec(T0, 0, 0x100, b"\x00"), Rec(T0 + 0.3, 0, 0x300, b"\x03"), Rec(T0 + 0.2, 0, 0x200, b"\x02"),
                Rec(T0 + 0.2, 0, 0x201, b"\x02"), Rec(T0 + 0.1, 0, 0x101, b"\x01")]
        b = open_backend(f"replay:{write_log(tmp_path / f'x{suffix}', recs)}?start=0")
        assert [f.address for f in b.frames] == [0x100, 0x101, 0x200, 0x201, 0x300]  # equal times keep file order
        assert b.times.tolist() == pytest.approx([0.0, 0.1, 0.2, 0.2, 0.3], abs=1e-6)

    def test_gzipped_text_log(self, tmp_path, drive):
        path = write_log(tmp_path / "d.asc", drive)
        (tmp_path / "d.asc.gz").write_bytes(gzip.compress(path.read_bytes()))
        log = read_can_log(str(tmp_path / "d.asc.gz"))
        assert [(f.address, f.dat, f.src) for f in log.frames if not (f.is_error or f.is_remote)][:3] == \
               [(r.address, r.data, r.bus) for r in drive[:3]]


class TestBuses:
    def candump(self, tmp_path, buses):
        recs = [Rec(T0 + 0.01 * i, bus, 0x100 + bus, bytes([i])) for i, bus in enumerate(buses)]
        return write_log(tmp_path / "c.log", recs)

    def test_several_named_channels_need_a_map(self, tmp_path):
        path = self.candump(tmp_path, [0, 1, 0])
        with pytest.raises(BackendError, match="can0:0,can1:1") as e:
            open_backend(f"replay:{path}")
        assert "\n" not in str(e.value)

    def test_a_map_routes_channels_and_skips_the_ones_it_leaves_out(self, tmp_path):
        path = self.candump(tmp_path, [0, 1, 2, 1])
        log = read_can_log(str(path), parse_bus_map("can1:2,can0:1"))
        assert [(f.address, f.src) for f in log.frames] == [(0x100, 1), (0x101, 2), (0x101, 2)]
        assert log.skipped == {"can2": 1} and log.buses == {"can0": 1, "can1": 2, "can2": None}
        with pytest.raises(CanLogError, match="does not have"):
            read_can_log(str(path), {"can7": 0})

    def test_one_named_channel_is_bus_0_and_numbers_are_their_bus(self, tmp_path):
        assert {f.src for f in read_can_log(str(self.candump(tmp_path, [1, 1]))).frames} == {0}
        recs = [Rec(T0, 0, 0x100, b"\x00"), Rec(T0 + 0.01, 2, 0x102, b"\x02")]
        asc = read_can_log(str(write_log(tmp_path / "a.asc", recs)))  # ASC's channels 1 and 3
        assert [f.src for f in asc.frames] == [0, 2]
        assert [f.src for f in read_can_log(str(tmp_path / "a.asc"), {"0": 1, "2": 0}).frames] == [1, 0]

    @pytest.mark.parametrize("text", ["can0", "can0:128", "can0:-1", "can0:0,can0:1", ":1", "can0:x"])
    def test_bad_maps(self, text):
        with pytest.raises(CanLogError):
            parse_bus_map(text)

    def test_options_that_do_not_fit_the_source(self, tmp_path):
        path = self.candump(tmp_path, [0])
        with pytest.raises(BackendError, match="keeps them"):
            open_backend(f"replay:{path}?dbc0=toyota_adas")
        (tmp_path / "route").mkdir()
        with pytest.raises(BackendError, match="not a CAN log"):
            open_backend(f"replay:{tmp_path / 'route'}?bus=can0:0")


def cut(path, n: int):
    data = path.read_bytes()
    path.write_bytes(data[:n] if n >= 0 else data[:len(data) + n])
    return path


class TestRefusals:
    @pytest.mark.parametrize("suffix, chop, why", [
        (".log", -5, "cut short, its last line has no line end"),
        (".asc", -30, "cut short"),
        (".trc", -9, "cut short, its last line has no line end"),
        (".csv", -4, "cut short, its last line has no line end"),
        (".blf", -100, "cut short"),
    ])
    def test_a_log_cut_short(self, tmp_path, drive, suffix, chop, why):
        path = cut(write_log(tmp_path / f"d{suffix}", drive), chop)
        with pytest.raises(BackendError, match=why) as e:
            open_backend(replay_url(path))
        assert "\n" not in str(e.value) and str(path) in str(e.value)

    def test_an_asc_cut_at_a_line_end_misses_its_trigger_block_end(self, tmp_path, drive):
        path = write_log(tmp_path / "d.asc", drive)
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(lines[:len(lines) // 2]))
        with pytest.raises(BackendError, match="no End TriggerBlock"):
            open_backend(f"replay:{path}")

    def test_a_gzip_cut_short(self, tmp_path, drive):
        path = tmp_path / "d.log.gz"
        path.write_bytes(gzip.compress(write_log(tmp_path / "d.log", drive).read_bytes())[:-200])
        with pytest.raises(BackendError, match="EOFError|cut short"):
            read_can_log(str(path), parse_bus_map(CANDUMP_BUSES))

    @pytest.mark.parametrize("name, content, why", [
        ("empty.asc", b"", "empty file"),
        ("photo.blf", b"\x89PNG\r\n\x1a\n" + bytes(200), "not a readable Vector BLF log"),
        ("notes.log", b"went for a drive\nnothing logged\n", "no CAN frames in it"),
        ("binary.csv", bytes(range(256)), "holds binary data"),
        ("table.csv", b"a,b\n1,2\n", "not a readable python-can CSV log"),
        ("x.db", b"SQLite format 3\x00" + bytes(100), "not a readable python-can SQLite log"),
        ("x.mf4", b"MDF     4.10    ", "asammdf"),
        ("drive.txt", b"(1.0) can0 123#00\n", "not a roadpilot log.*CAN logs are known by their file name"),
    ])
    def test_foreign_and_empty_files(self, tmp_path, name, content, why):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(BackendError, match=why) as e:
            open_backend(f"replay:{tmp_path / name}")
        assert "\n" not in str(e.value)

    @pytest.mark.parametrize("suffix", WRITTEN)
    def test_damaged_bytes_read_or_refuse_and_never_crash(self, tmp_path, drive, suffix):
        good = write_log(tmp_path / f"d{suffix}", drive[:300] + EDGE_CASES).read_bytes()
        rng = random.Random(suffix)  # the same damage every run
        outcomes = set()
        for k in range(30):
            data = bytearray(good)
            for _ in range(1 + k % 5):
                data[rng.randrange(len(data))] = rng.randrange(256)
            path = tmp_path / f"bad{k}{suffix}"
            path.write_bytes(bytes(data))
            try:
                log = read_can_log(str(path), parse_bus_map(CANDUMP_BUSES) if suffix == ".log" else None)
                outcomes.add("read")
                assert len(log.frames) == len(log.times) and all(0 <= f.src < 256 for f in log.frames)
            except CanLogError as e:
                outcomes.add("refused")
                assert "\n" not in str(e) and str(path) in str(e)
        assert "refused" in outcomes  # the damage was noticed at least once (a flipped byte may also go unseen)

    def test_canbridged_exits_2_with_the_reason(self, tmp_path, drive):
        path = cut(write_log(tmp_path / "d.trc", drive), -9)
        p = start("hardware.canbridged", "--backend", f"replay:{path}", log=tmp_path / "err")
        assert p.wait(30) == 2
        assert f"{path}: cut short" in (tmp_path / "err").read_text()


# The other process: opens the bus, says so, answers each frame (address + 1, bytes reversed) and, when the
# test's last frame came, prints what it received (its own answers must not come back to it).
PEER = """
import json, sys, time
from opendbc.car.can_definitions import CanData
from hardware.can_backends import open_backend
b = open_backend(sys.argv[1]); n = int(sys.argv[2]); got = []
print("ready", flush=True)
deadline = time.monotonic() + 20
while len(got) < n and time.monotonic() < deadline:
    for f in b.recv():
        got.append([f.address, f.dat.hex(), f.src, f.is_fd, f.is_extended])
        b.send(CanData(f.address + 1, f.dat[::-1], f.src))
    time.sleep(0.001)
time.sleep(0.2)
got += [[f.address, f.dat.hex(), f.src, f.is_fd, f.is_extended] for f in b.recv()]
print(json.dumps(got), flush=True)
b.close()
"""


def test_two_processes_exchange_frames_over_udp_multicast():
    url = f"udp_multicast:239.74.163.2?port={40000 + int.from_bytes(os.urandom(2)) % 20000}"  # a port of its own
    sent = [CanData(0x100 + i, bytes([i] * (i % 9)), 0) for i in range(20)]
    sent += [CanData(0x18DAF110, b"\x02\x10\x03", 0), CanData(0x456, bytes(range(64)), 0)]
    me = open_backend(url)
    peer = subprocess.Popen([sys.executable, "-c", PEER, url, str(len(sent))], cwd=REPO, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert peer.stdout.readline().strip() == "ready"
        got = []
        for f in sent:
            me.send(f)
        deadline = time.monotonic() + 20
        while len(got) < len(sent) and time.monotonic() < deadline:
            got += me.recv()
            time.sleep(0.001)
        time.sleep(0.2)
        got += me.recv()  # anything more (our own frames coming back) would be an error
        assert [(f.address, f.dat, f.src) for f in got] == [(f.address + 1, f.dat[::-1], 0) for f in sent]
        assert [(f.is_extended, f.is_fd) for f in got[-2:]] == [(True, False), (False, True)]
        theirs = json.loads(peer.communicate(timeout=30)[0])
        assert theirs == [[f.address, f.dat.hex(), 0, len(f.dat) > 8, f.address > 0x7FF] for f in sent]
    finally:
        me.close()
        if peer.poll() is None:
            peer.kill()
            peer.wait()
