"""The soak's short variant, as CI runs it: the whole stack drives while every fault of the soak is injected once
(tools/sim/soak.py), and the parts of its judgement that can be checked without a drive."""

import json
import subprocess
import sys

import pytest
import zstandard
from opendbc.can.packer import CANPacker
from opendbc.car.can_definitions import CanData
from opendbc.car.toyota import toyotacan

from cereal import messaging
from hardware.canbridged import ECHO_BUS_OFFSET
from selfdrive.loggerd.logreader import LogReader
from tools.sim import soak
from tools.sim.lib.sent_frames import ACC_CONTROL, PCM_CRUISE, STEERING_LKA, SentFrameCheck

DBC = "toyota_nodsu_pt_generated"


def can_step(t_us: int, frames: list[CanData]) -> bytes:
    msg = messaging.new_message("can", len(frames))
    msg.logMonoTime = t_us * 1000
    for c, (addr, dat, src) in zip(msg.can, frames, strict=True):
        c.address, c.dat, c.src = addr, dat, src
    return msg.to_bytes()


def cruise_frame(packer: CANPacker, on: bool) -> CanData:
    addr, dat, _ = packer.make_can_msg("PCM_CRUISE", 0, {"CRUISE_ACTIVE": int(on)})
    return CanData(addr, dat, 0)


def steer_echo(packer: CANPacker, counter: int, torque: int) -> CanData:
    addr, dat, _ = packer.make_can_msg("STEERING_LKA", 0, {"STEER_REQUEST": 1, "STEER_TORQUE_CMD": torque,
                                                           "COUNTER": counter % 64})
    return CanData(addr, dat, ECHO_BUS_OFFSET)


def test_the_sent_frame_judge_catches_steering_while_the_cruise_is_off_and_after_a_gap_waits_for_it():
    packer = CANPacker(DBC)
    assert (STEERING_LKA, PCM_CRUISE, ACC_CONTROL) == (0x2E4, 0x1D2, 0x343)
    assert toyotacan  # the brand whose frames these are

    def drive(cruise: list[bool], gap_at: int | None = None) -> SentFrameCheck:
        check, t = SentFrameCheck(0), 1_000_000
        for k, on in enumerate(cruise):
            t += 10_000 if k != gap_at else 5_000_000
            frames = [cruise_frame(packer, on)] + ([steer_echo(packer, k, 50)] if k else [])
            check.feed(can_step(t, frames))
        return check

    off = drive([False] * 20)
    assert off.sent == 19 and off.violations >= 19  # every steering frame with the cruise off is refused
    assert any("cruise is off" in b for b in off.bad)
    # after a gap the copy judges again once it sees the car's cruise off (its state then is the bus layer's)
    gap_off = drive([False] * 20, gap_at=10)
    assert gap_off.gaps == 1 and gap_off.unjudged == 0 and gap_off.violations >= 19
    gap_on = drive([False] * 10 + [True] * 10, gap_at=10)
    # cruise on after the gap: not judged (the step right after the gap has no echo to judge: no bus time before it)
    assert gap_on.gaps == 1 and gap_on.unjudged == 9 and gap_on.violations == drive([False] * 10).violations


def test_the_hour_schedule_kills_every_daemon_and_never_stacks_params_on_a_full_disk():
    injections, seconds = soak.hour_schedule(3600.0)
    killed = [n for i in injections if i.fault == "kill" for n in i.targets]
    assert set(killed) == set(soak.KILLED) and min(killed.count(n) for n in soak.KILLED) >= 6
    full = [(i.t, i.end) for i in injections if i.fault == "disk_full"]
    params = [(i.t, i.end) for i in injections if i.fault == "bad_params"]
    assert len(full) == 12 and len(params) == 12
    # putting the params back needs a disk with room
    assert not any(a < d and c < b for a, b in full for c, d in params)
    assert all(i.end < seconds - 5 for i in injections)


def test_bad_options_are_one_line_and_exit_2():
    for args in (["--minutes", "0"], ["--minutes", "nan"], ["--disk-mb", "1"], ["--short", "--minutes", "5"]):
        r = subprocess.run([sys.executable, "-m", "tools.sim.soak", *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)


@pytest.mark.timeout(900)  # ~3 simulated minutes, 5 wall minutes on an idle 2-core machine: more beside other work
def test_short_soak_every_fault_once_nothing_lost_no_unsafe_frame(tmp_path):
    out = tmp_path / "soak"
    r = subprocess.run([sys.executable, "-m", "tools.sim.soak", "--short", "--keep-route", "--out", str(out)],
                       capture_output=True, text=True, timeout=900)
    print(r.stdout[-3000:])
    v = json.loads((out / "verdict.json").read_text())
    assert r.returncode == 0 and v["ok"], v["failures"]
    # what the verdict's rules stand on, spelled out: every daemon killed once and restarted once, nothing else
    assert v["kills"] == dict.fromkeys(soak.KILLED, 1)
    assert {n: c for n, c in v["restarts"].items() if c} == v["kills"]
    # the full disk: one storageFault shown, the recording stopped and came back
    assert v["storage_alerts"] == 1 and any(b - a > 5 for a, b in v["gaps"])
    assert v["segments"] >= 3 and v["route_bytes"] > 1e6
    # the corrupt calibration at start: reset and named, and the stack still engaged
    assert v["params_reset_alert"] and v["first_engaged_t"] is not None
    assert v["unsafe"] == [] and v["sent_frames"] - v["unjudged_frames"] > 100 * 45  # judged up to the full disk
    assert v["wrong_service_sent"] > 0

    assert v["unexplained_soft_disables"] == []  # the 200 MB param and the garbage one cost no engagement

    # byte 0 of a recorded rlog flipped: the reader loses that file's first frame, no more
    seg0 = next((out / "routes").iterdir()) / "0" / "rlog.zst"
    data = seg0.read_bytes()
    first = zstandard.ZstdDecompressor().decompressobj()
    first.decompress(data)
    (tmp_path / "first.zst").write_bytes(data[:len(data) - len(first.unused_data)])
    in_first = sum(1 for _ in LogReader(tmp_path / "first.zst"))
    whole = sum(1 for _ in LogReader(seg0))
    seg0.write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])
    lr = LogReader(seg0)
    flipped = sum(1 for _ in lr)
    assert 0 < whole - flipped <= in_first < whole / 10 and lr.corrupt, (whole, flipped, in_first, lr.corrupt)
