"""The CAN log importer: each format python-can writes here (written by the test, edge cases included) becomes a
route of 10 ms `can` messages holding every usable frame in time order, the logger's own on bus 128 + n, garbage
counted in route.json; the route replays through canbridged's backend and card reads the car from it. A log cut
short, foreign or refused for its arguments is one line on stderr, exit status 2, and no route folder."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from common.paths import routes_dir
from hardware.can_backends import open_backend
from hardware.can_logs import parse_bus_map, read_can_log
from hardware.tests.can_log_files import (
    CANDUMP_BUSES,
    EDGE_CASES,
    T0,
    WRITTEN,
    Rec,
    expected,
    rav4_drive,
    write_log,
)
from selfdrive.car.car_specific import CarSetup
from selfdrive.car.tests.helpers import REPO, SyntheticRav4, car_logic_for
from selfdrive.loggerd.logreader import LogReader
from selfdrive.loggerd.route import Route
from tools.importers import canlog
from tools.importers.tests.failing_writes import fail_after


@pytest.fixture(scope="module")
def drive() -> list[Rec]:
    return rav4_drive(SyntheticRav4()) + EDGE_CASES


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = canlog.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def bus_args(path) -> list[str]:
    return ["--bus", CANDUMP_BUSES] if str(path).endswith(".log") else []


class TestImport:
    @pytest.mark.parametrize("suffix", WRITTEN)
    def test_every_usable_frame_lands_in_10ms_can_messages(self, tmp_path, capsys, drive, suffix):
        log = write_log(tmp_path / f"drive{suffix}", drive)
        rc, out, err = run(capsys, str(log), "--out", str(tmp_path / "route"), "--car", "TOYOTA_RAV4", *bus_args(log))
        assert rc == 0, err
        path = out.strip()
        assert path == str(tmp_path / "route") and "canlog: writing 100%" in err
        evs = list(LogReader(path))
        assert {e.which() for e in evs} == {"can"}
        times = np.array([e.logMonoTime for e in evs])
        first = float(read_can_log(str(log), parse_bus_map(CANDUMP_BUSES) if suffix == ".log" else None).times[0])
        assert times[0] == round((first + 0.01) * 1e9)  # the log's own seconds (ASC and BLF count from 0)
        assert np.abs(np.diff(times) - 10_000_000).max() <= 1
        frames, garbage, sent = expected(suffix, drive, keep_sent=True)
        assert [(c.address, bytes(c.dat), c.src) for e in evs for c in e.can] == frames
        meta = Route(path).meta()
        assert meta["importer"] == "canlog" and meta["car"] == "TOYOTA_RAV4" and meta["dropped"] == garbage
        assert meta["sent_frames"] == sent and meta["frames"] == len(frames)

    def test_the_route_replays_into_canbridged_and_card_reads_the_car(self, tmp_path, capsys, drive):
        log = write_log(tmp_path / "drive.asc", drive)
        rc, out, _ = run(capsys, str(log), "--out", str(tmp_path / "route"))
        assert rc == 0 and "car" not in Route(out.strip()).meta()  # no --car: card identifies it
        b = open_backend(f"replay:{out.strip()}?start=0")
        frames, _, sent = expected(".asc", drive)
        assert [(f.address, f.dat, f.src) for f in b.frames] == frames and b.skipped_sent == sent
        packets = [(ev.logMonoTime, [(c.address, bytes(c.dat), c.src) for c in ev.can])
                   for ev in LogReader(out.strip(), services=["can"])]
        logic, used = car_logic_for(packets, setup=CarSetup(dsu="absent", buses=frozenset({0})))
        states = [logic.update([p]) for p in packets[used:]]
        assert states[-1].canValid and abs(states[-1].vEgoRaw - 50 / 3.6) < 0.05 and states[-1].brakePressed
        assert not states[0].brakePressed

    def test_default_route_is_named_after_the_file_and_force_replaces_it(self, tmp_path, capsys, drive):
        log = write_log(tmp_path / "my-drive.trc", drive[:50])
        rc, out, _ = run(capsys, str(log))
        assert rc == 0 and out.strip() == os.path.join(routes_dir(), "my-drive")
        rc, _, err = run(capsys, str(log))
        assert rc == 2 and "already exists" in err and len(err.splitlines()) == 1
        assert run(capsys, str(log), "--force")[0] == 0


class TestRefusals:
    def refused(self, capsys, *argv: str, progress: bool = False) -> str:
        """The refusal's line; it is stderr's only line unless writing had begun (`progress`)."""
        rc, out, err = run(capsys, *argv)
        lines = err.splitlines()
        assert rc == 2 and out == "" and lines and lines[-1].startswith("canlog import: "), err
        assert all(ln.startswith("canlog: ") for ln in lines[:-1]) and (len(lines) > 1) == progress, err
        return lines[-1]

    def test_a_log_cut_short_leaves_no_route(self, tmp_path, capsys, drive):
        log = write_log(tmp_path / "d.log", drive)
        log.write_bytes(log.read_bytes()[:-6])
        assert "cut short" in self.refused(capsys, str(log), "--out", str(tmp_path / "r"), *bus_args(log))
        assert not (tmp_path / "r").exists()

    @pytest.mark.parametrize("name, content, why", [
        ("notes.txt", b"(1.0) can0 123#00\n", "not a CAN log python-can reads"),
        ("empty.blf", b"", "empty file"),
        ("photo.asc", bytes(range(256)), "holds binary data"),
    ])
    def test_foreign_files(self, tmp_path, capsys, name, content, why):
        (tmp_path / name).write_bytes(content)
        assert why in self.refused(capsys, str(tmp_path / name), "--out", str(tmp_path / "r"))
        assert not (tmp_path / "r").exists()

    @pytest.mark.parametrize("args, why", [
        (["--car", "NOT_A_CAR"], "unknown platform 'NOT_A_CAR'"),
        (["--bus", "can0=0"], "expected channel:bus pairs"),
        (["--bus", "can9:0"], "bus map names channel(s) can9"),
        ([], "can0:0,can1:1,can2:2"),  # several named channels and no map
    ])
    def test_bad_arguments(self, tmp_path, capsys, drive, args, why):
        log = write_log(tmp_path / "d.log", drive)
        assert why in self.refused(capsys, str(log), *args)

    @pytest.mark.parametrize("times, why", [((-5.0, 1.0), "times must be seconds from 0"),
                                            ((0.0, 2e5), "frames span 200000 s")])
    def test_times_a_route_cannot_hold(self, tmp_path, capsys, times, why):
        log = write_log(tmp_path / "t.csv", [Rec(t, 0, 0x100, b"\x01") for t in times])
        assert why in self.refused(capsys, str(log), "--out", str(tmp_path / "r"))

    def test_a_log_of_garbage_only(self, tmp_path, capsys):
        log = write_log(tmp_path / "g.asc", [Rec(T0, 0, 0x100, remote=True), Rec(T0 + 1, 0, 0, error=True)])
        assert "no usable frames" in self.refused(capsys, str(log))

    def test_a_failure_while_writing_removes_the_partial_route(self, tmp_path, capsys, monkeypatch, drive):
        monkeypatch.setattr(canlog, "can_messages", fail_after(canlog.can_messages, 60))
        log = write_log(tmp_path / "d.blf", drive)
        assert "disk full" in self.refused(capsys, str(log), "--out", str(tmp_path / "r"), progress=True)
        assert not (tmp_path / "r").exists()

    def test_the_command_line_exits_2(self, tmp_path, drive):
        log = write_log(tmp_path / "d.trc", drive)
        log.write_bytes(log.read_bytes()[:-9])
        p = subprocess.run([sys.executable, "-m", "tools.importers.canlog", str(log), "--out", str(tmp_path / "r")],
                           cwd=REPO, capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and p.stdout == ""
        assert p.stderr.splitlines() == [f"canlog import: {log}: cut short, its last line has no line end "
                                         f"({log.read_text().splitlines()[-1].strip()[:60]!r})"]


def test_route_json_says_where_each_channel_went(tmp_path, capsys):
    recs = [Rec(T0, 0, 0x100, b"\x00"), Rec(T0 + 0.01, 1, 0x101, b"\x01"), Rec(T0 + 0.02, 2, 0x102, b"\x02")]
    log = write_log(tmp_path / "c.log", recs)
    rc, out, err = run(capsys, str(log), "--bus", "can0:0,can2:1")
    assert rc == 0 and "skipped channels {'can1': 1}" in err
    meta = json.loads((open(os.path.join(out.strip(), "route.json"))).read())
    assert meta["channels"] == {"can0": 0, "can1": None, "can2": 1} and meta["skipped_channels"] == {"can1": 1}
    assert meta["buses"] == {"0": 1, "1": 1} and meta["format"] == "candump -L log"
