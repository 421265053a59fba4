"""Route replay: pace, speed, pause, seeks (relative, absolute, to engagements and alerts), allow/block,
looping, damaged segments skipped with a report, frames served on VisionIPC from the route's video, and
the non-interactive command mode of the real process."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from cereal import messaging
from tools.lib.make_route import write_route
from tools.replay.replay import Replay, marks_of

T0 = 7_000_000_000


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def drive(seconds: float = 4.0, engage=(1.0, 3.0), alert_at: float = 2.0) -> list:
    """carState at 100 Hz with vEgo = seconds since the start; selfdriveState engaged in [engage) and an alert."""
    out = []
    for k in range(int(seconds * 100)):
        t = k * 0.01
        cs = messaging.new_message("carState")
        cs.logMonoTime, cs.carState.vEgo = T0 + k * 10_000_000, t
        sd = messaging.new_message("selfdriveState")
        sd.logMonoTime = T0 + k * 10_000_000 + 1
        sd.selfdriveState.enabled = engage[0] <= t < engage[1]
        sd.selfdriveState.alertType = "fcw/warning" if alert_at <= t < alert_at + 0.5 else ""
        out += [cs, sd]
    return out


@pytest.fixture
def route(tmp_path):
    return write_route(drive(), "r", root=str(tmp_path), segment_seconds=2.0)


class TestEngine:
    def test_pace_speed_pause_and_seeks(self, route):
        clock = FakeClock()
        r = Replay(route, clock=clock, frames=False)
        def due(pos_s: float) -> int:
            return sum(t <= T0 + int(round(pos_s * 1e9)) for t in r.times)

        assert r.step() == pytest.approx(1e-9) and r.sent == 1  # carState at 0 s; selfdriveState 1 ns later
        clock.t += 0.5
        r.step()
        assert r.sent == due(0.5) == 101
        r.set_speed(2.0)
        clock.t += 0.25          # 0.5 s of the route at 2x
        r.step()
        assert r.sent == due(1.0) == 201
        r.set_pause(True)
        clock.t += 5.0
        r.step()
        assert r.sent == 201 and (r.position() - r.t0) * 1e-9 == pytest.approx(1.0)
        r.set_pause(False)
        r.seek(3.0)
        r.step()
        assert r.msgs[r.i - 1].logMonoTime <= T0 + 3_000_000_001
        r.seek(-10.0, relative=True)
        assert r.position() == r.t0  # clamped to the start
        assert r.seek_next("engage") and (r.position() - T0) == 1_000_000_001
        assert r.seek_next("alert") and (r.position() - T0) == 2_000_000_001
        assert r.seek_next("disengage") and (r.position() - T0) == 3_000_000_001
        assert not r.seek_next("engage")  # none later: stays
        r.set_speed(100.0)
        assert r.speed == 10.0

    @pytest.mark.parametrize("line", ["seek +inf", "seek -inf", "seek nan", "seek 1e400", "speed nan"])
    def test_a_non_finite_command_is_an_error_and_changes_nothing(self, route, line):
        clock = FakeClock()
        r = Replay(route, clock=clock, frames=False)
        r.seek(1.5)
        with pytest.raises(ValueError, match="finite|number"):
            r.command(line)
        assert r.position() - r.t0 == 1_500_000_000 and r.speed == 1.0
        assert r.command("seek +1") and r.position() - r.t0 == 2_500_000_000  # and it goes on

    def test_end_and_loop(self, route):
        clock = FakeClock()
        r = Replay(route, clock=clock, frames=False)
        clock.t += 10.0
        r.step()
        assert r.done and r.sent == 800
        looping = Replay(route, clock=clock, loop=True, frames=False)
        clock.t += 10.0
        looping.step()
        looping.step()
        assert not looping.done and looping.laps == 1 and looping.sent == 801  # and the first one again

    def test_allow_and_block(self, route):
        assert Replay(route, allow={"carState", "modelV2"}, frames=False).services == ["carState"]
        assert Replay(route, block={"carState"}, frames=False).services == ["selfdriveState"]

    def test_marks(self):
        evs = [messaging.log_from_bytes(m.to_bytes()) for m in drive()]
        assert [(m.kind, round((m.t - T0) / 1e9, 2)) for m in marks_of(evs)] == \
            [("engage", 1.0), ("alert", 2.0), ("disengage", 3.0)]

    def test_damaged_segment_is_reported_and_the_rest_plays(self, route):
        rlog = os.path.join(route, "0", "rlog.zst")
        data = bytearray(open(rlog, "rb").read())
        data[len(data) // 2:len(data) // 2 + 64] = b"\xff" * 64
        open(rlog, "wb").write(bytes(data))
        r = Replay(route, frames=False)
        assert r.problems and any("0/rlog.zst" in p for p, _ in r.problems)
        assert 400 <= len(r.msgs) < 800  # segment 1 whole, segment 0 up to/around the damage

    def test_frames_from_the_route_video(self, tmp_path):
        from cereal.visionipc import VisionIpcClient, VisionStreamType
        from selfdrive.loggerd.video_writer import VideoWriter
        w, h = 64, 48
        msgs, pictures = [], []
        for i in range(6):
            nv12 = np.full((h * 3 // 2, w), 128, np.uint8)
            nv12[:h] = 40 * i + 20
            pictures.append(nv12)
            t = T0 + i * 50_000_000
            cam = messaging.new_message("roadCameraState")
            cam.logMonoTime, cam.roadCameraState.frameId = t + 1, 100 + i
            idx = messaging.new_message("roadEncodeIdx")
            idx.logMonoTime = t
            e = idx.roadEncodeIdx
            e.frameId, e.segmentNum, e.segmentId, e.path = 100 + i, 0, i, "0/road.mp4"
            msgs += [idx, cam]
        route = write_route(msgs, "v", root=str(tmp_path))
        vw = VideoWriter(os.path.join(route, "0", "road.mp4"), w, h)
        for nv12 in pictures:
            vw.write(nv12)
        vw.close()
        clock = FakeClock()
        r = Replay(route, clock=clock)
        client = VisionIpcClient(VisionStreamType.ROAD)
        clock.t += 0.001
        r.step()  # the first frame creates the server
        assert client.connect(5.0)
        first = None
        while first is None:  # until our notifications arrive (ZMQ's slow joiner): resend frame 100
            r.frames.server.send(np.full((h * 3 // 2, w), 20, np.uint8), 100)
            first = client.recv(100)
        assert first.frame_id == 100
        got = []
        for _ in range(5):
            clock.t += 0.05
            r.step()
            f = client.recv(1000)
            if f is not None:
                got.append((f.frame_id, int(np.asarray(f.y).mean())))
        assert [fid for fid, _ in got] == [101, 102, 103, 104, 105]
        assert all(abs(y - (40 * (fid - 100) + 20)) <= 3 for fid, y in got)
        assert r.frames.sent == 6 and r.frames.missing == 0


def start(route: str, *args: str, tmp_path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tools.replay.replay", route, *args], stdin=subprocess.PIPE,
                            stdout=open(tmp_path / "out.txt", "wb"), stderr=open(tmp_path / "err.txt", "wb"))


class TestProcess:
    def test_commands_drive_a_real_replay(self, route, tmp_path):
        sock = messaging.sub_sock("carState")
        p = start(route, "--loop", "--allow", "carState", tmp_path=tmp_path)
        try:
            first = None
            deadline = time.monotonic() + 20
            while first is None:  # the replay starts over on its own (--loop): wait until we are connected
                assert time.monotonic() < deadline, (tmp_path / "err.txt").read_text()
                msg = messaging.recv_one(sock, 100)
                first = msg
            assert abs(first.logMonoTime - time.monotonic_ns()) < 2e9  # stamped when sent, not when recorded
            p.stdin.write(b"pause\nseek 3.5\nstatus\n")
            p.stdin.flush()
            time.sleep(0.3)
            messaging.drain_sock(sock)
            p.stdin.write(b"resume\n")
            p.stdin.flush()
            msg = messaging.recv_one(sock, 2000)
            assert msg is not None and 3.49 <= msg.carState.vEgo <= 3.8
            p.stdin.write(b"seek +inf\nbogus\nquit\n")
            p.stdin.flush()
            assert p.wait(10) == 0
        finally:
            if p.poll() is None:
                p.kill()
        out = (tmp_path / "out.txt").read_text()
        assert "replaying" in out and "paused    3.50 / 3.99 s" in out and "unknown command 'bogus'" in out
        assert "replay: seek needs a finite number of seconds, got inf" in out

    def test_bad_arguments(self, route, tmp_path):
        r = subprocess.run([sys.executable, "-m", "tools.replay.replay", route, "--allow", "nope"],
                           capture_output=True, text=True)
        assert r.returncode == 2 and "unknown service" in r.stderr
        r = subprocess.run([sys.executable, "-m", "tools.replay.replay", "no-such-route"], capture_output=True,
                           text=True)
        assert r.returncode == 1 and "no route" in r.stderr
        r = subprocess.run([sys.executable, "-m", "tools.replay.replay", route, "--speed", "50"], capture_output=True,
                           text=True)
        assert r.returncode == 2 and "speed must be" in r.stderr


def rav4_drive(seconds: float) -> list:
    """A TOYOTA_RAV4's CAN at 100 Hz whose speed says when it was sent: 20 km/h + 40 km/h per second."""
    from selfdrive.car.tests.helpers import SyntheticRav4
    rav4, out = SyntheticRav4(), []
    for k in range(int(seconds * 100)):
        frames = rav4.frames(k * 0.01, speed_kph=20.0 + 40.0 * k * 0.01)
        can = messaging.new_message("can", len(frames))
        for c, (_, bus, address, dat) in zip(can.can, frames, strict=True):
            c.address, c.dat, c.src = address, dat, bus
        can.logMonoTime = T0 + k * 10_000_000
        out.append(can)
    return out


class TestCar:
    def test_route_json_then_carparams_name_the_car(self, tmp_path):
        from tools.replay.replay import route_car
        def cp():
            m = messaging.new_message("carParams")
            m.logMonoTime, m.carParams.carFingerprint = T0, "HONDA_CIVIC"
            return m
        plain = write_route(drive(0.1), "plain", root=str(tmp_path))
        assert Replay(plain, frames=False).car is None
        recorded = write_route([cp(), *drive(0.1)], "recorded", root=str(tmp_path))
        assert Replay(recorded, frames=False).car == "HONDA_CIVIC"
        imported = write_route([cp(), *drive(0.1)], "imported", root=str(tmp_path), meta={"car": "TOYOTA_RAV4"})
        assert route_car(imported, []) == "TOYOTA_RAV4"  # what the importer wrote wins over a message

    @pytest.mark.parametrize("where", ["--car", "route.json"])
    def test_an_unknown_platform_is_one_line_and_exit_2(self, tmp_path, where):
        meta = {"car": "TOYOTA_NOPE"} if where == "route.json" else None
        route = write_route(drive(0.1), "r", root=str(tmp_path), meta=meta)
        extra = ["--car", "TOYOTA_NOPE"] if where == "--car" else []
        r = subprocess.run([sys.executable, "-m", "tools.replay.replay", route, "--stack", *extra],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
        assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
        assert "unknown platform 'TOYOTA_NOPE'" in r.stderr


class TestStack:
    def test_the_stack_answers_the_drive_from_its_first_frame(self, tmp_path):
        """--stack waits for card (and loggerd) to subscribe to `can` before playing, and card answers its 1 s
        fingerprint window too: the first carState is the route's first `can`, nothing of the start is lost."""
        route = write_route(rav4_drive(3.0), "imported", root=str(tmp_path), meta={"car": "TOYOTA_RAV4"})
        sock = messaging.sub_sock("carState")
        env = {**os.environ, "ONLY": "card,loggerd"}  # what answers and records `can`; the rest waits for the car
        p = subprocess.run([sys.executable, "-m", "tools.replay.replay", route, "--stack", "--exit-at-end"],
                           env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
        assert p.returncode == 0, p.stderr[-3000:]
        assert "car TOYOTA_RAV4; playback starts once loggerd, card subscribed to can" in p.stdout
        speeds = [m.carState.vEgoRaw * 3.6 for m in messaging.drain_sock(sock)]
        # about one per `can` message (300 in 3 s; then card's own clock's): on a loaded machine card may take two
        # messages that came together in one cycle
        assert len(speeds) >= 285, p.stderr[-3000:]
        # card's first answer reads no speed yet (opendbc's parser): the second answers the second frame, at 10 ms
        assert speeds[0] == 0.0 and speeds[1] == pytest.approx(20.4, abs=0.02)
        answered_s = (speeds[1] - 20.0) / 40.0
        assert answered_s <= 0.5
        # and loggerd recorded the drive from its first frame
        from common.paths import routes_dir
        from selfdrive.loggerd.logreader import LogReader
        (name,) = os.listdir(routes_dir())
        cans = [ev for ev in LogReader(os.path.join(routes_dir(), name)) if ev.which() == "can"]
        first = messaging.log_from_bytes(rav4_drive(0.01)[0].to_bytes())
        assert [bytes(c.dat) for c in cans[0].can] == [bytes(c.dat) for c in first.can]
