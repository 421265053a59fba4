"""The openpilot importer: logs written here with openpilot's layout (opendbc's rlog.capnp for `can`, and for the other
members openpilot's ordinals with pointer-typed members everywhere else, as openpilot's own union has them) become a
roadpilot route whose carState, carParams and CAN are what was written, in time order, with what roadpilot has no
meaning for dropped and counted. bz2, zst and raw alike; a log cut short keeps what came before it and exits 2 with
one line; a foreign file exits 2 with one line and writes nothing; selfdrive.loggerd.logreader refuses an openpilot
log in one line too."""

import bz2
import os
import subprocess
import sys

import pytest
import zstandard
from opendbc.car.can_definitions import CanData

from selfdrive.loggerd.logreader import LogReader
from selfdrive.loggerd.route import Route
from tools.importers import openpilot, openpilot_log

# openpilot's cereal/log.capnp, stated here on its own so that a wrong number in the importer's tables fails: the
# Event members, and FrameData and EncodeIndex with more of their fields than the importer declares
OPENPILOT_ORDINALS = {"can": (5, "List(CanData)"), "sendcan": (17, "List(CanData)"),
                      "carState": (22, "Car.CarState"), "carParams": (69, "Car.CarParams"),
                      "roadCameraState": (2, "FrameData"), "roadEncodeIdx": (15, "EncodeIndex"),
                      "qRoadEncodeIdx": (90, "EncodeIndex"),
                      "controlsState": (7, "Data")}  # a member the importer does not keep
OPENPILOT_STRUCTS = """struct FrameData {
  frameId @0 :UInt32;
  encodeId @1 :UInt32;
  timestampEof @2 :UInt64;
  frameLength @3 :Int32;
  integLines @4 :Int32;
  globalGain @5 :Int32;
  image @6 :Data;
  frameType @7 :FrameType;
  timestampSof @8 :UInt64;
  androidCaptureResult @9 :Data;
  transform @10 :List(Float32);
  lensPos @11 :Int32;
  lensSag @12 :Float32;
  enum FrameType {
    unknown @0;
    neo @1;
  }
}
struct EncodeIndex {
  frameId @0 :UInt32;
  type @1 :Type;
  encodeId @2 :UInt32;
  segmentNum @3 :Int32;
  segmentId @4 :UInt32;
  segmentIdEncode @5 :UInt32;
  timestampSof @6 :UInt64;
  timestampEof @7 :UInt64;
  flags @8 :UInt32;
  len @9 :UInt32;
  enum Type {
    bigBoxLossless @0;
    fullHEVC @1;
    qcameraH264 @2;
  }
}"""
WRITER = openpilot_log.load_schema(openpilot_log.schema_text(
    OPENPILOT_ORDINALS, filler="Data", file_id=0xe3f1_27aa_9c40_5b12, structs=OPENPILOT_STRUCTS))
T0 = 1_000_000_000_000
STEP = 10_000_000
N_STEPS = 1500           # 15 s: enough bytes that bz2 (100 kB blocks at level 1) and zstd flush blocks before a cut
CAR = "TOYOTA_RAV4"


def rlog_schema():
    from opendbc.car.logreader import capnp_log  # opendbc's own rlog.capnp, capnp.load-ed by opendbc
    return capnp_log


def can_frames(i: int) -> list[CanData]:
    """A step's frames: powertrain and radar, an extended id, a CAN FD frame, what was sent (128 + n), what the panda
    refused (192 + n), and a 9-byte classic frame canbridged refuses."""
    frames = [CanData(0x260, bytes([i & 0xFF, 1, 2, 3, 4, 5, 6, 7]), 0),
              CanData(0x2E4, bytes([i >> 8 & 0xFF, i & 0xFF, 9]), 1), CanData(0x18DAF100, bytes([2, 0x3E, 0]), 0)]
    if i % 5 == 0:
        frames += [CanData(0x2E4, bytes([0x80, i & 0xFF, 0, 0, 0]), 128), CanData(0x343, bytes(8), 192),
                   CanData(0x1A0, bytes(range(64)), 2), CanData(0x7FF, bytes(9), 0)]
    return frames


def kept(frames: list[CanData]) -> list[CanData]:
    return [f for f in frames if f.src < 192 and len(f.dat) != 9]


def drive() -> list[tuple[int, bytes, dict]]:
    """(logMonoTime, serialized openpilot Event, what was written) in the order openpilot logs them: as they arrive,
    so a carState is sometimes logged after a later can."""
    out = []
    cp = WRITER.Event.new_message(logMonoTime=T0 - STEP)
    params = cp.init("carParams")
    params.carFingerprint, params.mass, params.wheelbase, params.steerRatio = CAR, 1735.0, 2.65, 14.3
    params.init("safetyConfigs", 1)[0].safetyParam = 73
    out.append((cp.logMonoTime, cp.to_bytes(), {"carParams": params.to_dict()}))
    for i in range(N_STEPS):
        t = T0 + i * STEP
        ev = rlog_schema().Event.new_message(logMonoTime=t)
        frames = can_frames(i)
        for c, (address, dat, bus) in zip(ev.init("can", len(frames)), frames, strict=True):
            c.address, c.dat, c.src = address, dat, bus
        out.append((t, ev.to_bytes(), {"can": frames}))
        cs = WRITER.Event.new_message(logMonoTime=t + STEP // 2 if i % 7 else t - STEP // 3, valid=i % 50 != 0)
        state = cs.init("carState")
        state.vEgo, state.aEgo, state.steeringAngleDeg = 20 + i * 0.01, 0.5, (i % 100) - 50.0
        state.gasPressed, state.brakePressed = i % 3 == 0, i % 11 == 0
        state.cruiseState.enabled, state.cruiseState.speed = i > 100, 25.0
        out.append((cs.logMonoTime, cs.to_bytes(), {"carState": state.to_dict(), "valid": cs.valid}))
        if i % 10 == 0:
            sc = WRITER.Event.new_message(logMonoTime=t + 1)
            sent = [CanData(0x2E4, bytes([0x80, i & 0xFF, 0, 0, 0]), 0)]
            for c, (address, dat, bus) in zip(sc.init("sendcan", 1), sent, strict=True):
                c.address, c.dat, c.src = address, dat, bus
            out.append((t + 1, sc.to_bytes(), {"sendcan": sent}))
        if i % 5 == 0:
            other = WRITER.Event.new_message(logMonoTime=t + 2)
            other.controlsState = b"not ours"
            out.append((t + 2, other.to_bytes(), {}))
    return out


COMPRESS = {".bz2": lambda b: bz2.compress(b, compresslevel=1),
            ".zst": lambda b: zstandard.ZstdCompressor().compress(b), "": lambda b: b}


@pytest.fixture(scope="module")
def written() -> list[tuple[int, bytes, dict]]:
    return drive()


def write_log(path, events) -> str:
    with open(path, "wb") as f:
        f.write(COMPRESS[os.path.splitext(str(path))[1] if str(path).endswith((".bz2", ".zst")) else ""](
            b"".join(dat for _, dat, _ in events)))
    return str(path)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = openpilot.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if not line.startswith("openpilot: ")]  # progress lines aside


def expected(events) -> dict:
    """What the route must hold, service -> [(logMonoTime, value)] in time order (stable, as written)."""
    want: dict = {"can": [], "sendcan": [], "carState": [], "carParams": []}
    for t, _, what in sorted(events, key=lambda e: e[0]):
        for name, value in what.items():
            if name in want:
                want[name].append((t, kept(value) if name == "can" else value))
    return want


def route_contents(path: str) -> dict:
    got: dict = {"can": [], "sendcan": [], "carState": [], "carParams": [], "valid": []}
    for ev in LogReader(path):
        which = ev.which()
        if which in ("can", "sendcan"):
            got[which].append((ev.logMonoTime, [(c.address, bytes(c.dat), c.src) for c in getattr(ev, which)]))
        else:
            got[which].append((ev.logMonoTime, getattr(ev, which).to_dict()))
            if which == "carState":
                got["valid"].append(ev.valid)
    return got


class TestImport:
    @pytest.mark.parametrize("suffix", [".bz2", ".zst", ""])
    def test_carstate_carparams_and_can_land_as_written(self, tmp_path, capsys, written, suffix):
        log = write_log(tmp_path / f"rlog{suffix}", written)
        rc, out, err = run(capsys, log, "--out", str(tmp_path / "route"))
        assert rc == 0 and errors(err) == [], err
        assert out.strip() == str(tmp_path / "route") and "openpilot: writing 100%" in err
        got, want = route_contents(out.strip()), expected(written)
        times = [t for service in want for t, _ in want[service]]
        assert len(got["carState"]) == N_STEPS and got["carState"] == want["carState"]
        assert got["can"] == want["can"] and got["sendcan"] == want["sendcan"]
        assert got["carParams"] == want["carParams"] and got["carParams"][0][1]["carFingerprint"] == CAR
        assert got["valid"] == [what["valid"] for _, _, what in sorted(written, key=lambda e: e[0]) if "valid" in what]
        assert sorted(times) == [ev.logMonoTime for ev in LogReader(out.strip(), sort_by_time=False)]  # in order
        meta = Route(out.strip()).meta()
        assert meta["car"] == CAR and meta["log_car"] == CAR and meta["problems"] == []
        assert meta["messages_read"]["@7"] == N_STEPS // 5  # controlsState: read, counted, not kept
        assert meta["dropped"] == {"rejected_by_panda": N_STEPS // 5, "bad_length": N_STEPS // 5}

    def test_opendbc_reads_the_files_the_test_writes(self, tmp_path, written):
        # the test's logs are openpilot's format as opendbc knows it, not just as the importer reads it
        from opendbc.car.logreader import LogReader as OpendbcLogReader
        log = write_log(tmp_path / "rlog.zst", written)
        lr = OpendbcLogReader(log, only_union_types=True)  # it skips members its schema does not name
        cans = [[(c.address, bytes(c.dat), c.src) for c in can] for can in lr.filter("can")]
        assert cans == [what["can"] for _, _, what in written if "can" in what]

    def test_a_route_folder_of_segments_with_qlog_where_no_rlog(self, tmp_path, capsys, written):
        route = tmp_path / "2026-01-02--10-11-12"
        half = len(written) // 2
        for n, (name, part) in enumerate([("rlog.bz2", written[:half]), ("qlog.zst", written[half:])]):
            os.makedirs(route / str(n))
            write_log(route / str(n) / name, part)
        rc, out, err = run(capsys, str(route), "--car", "TOYOTA_COROLLA_TSS2")
        assert rc == 0 and errors(err) == [], err
        assert os.path.basename(out.strip()) == route.name  # under the data folder, named as the route
        assert route_contents(out.strip())["carState"] == expected(written)["carState"]
        meta = Route(out.strip()).meta()
        assert meta["car"] == "TOYOTA_COROLLA_TSS2" and [os.path.basename(p) for p in meta["source"]] == [
            "rlog.bz2", "qlog.zst"]


class TestDamage:
    @pytest.mark.parametrize("suffix", [".bz2", ".zst", ""])
    def test_a_log_cut_short_keeps_what_came_before(self, tmp_path, capsys, written, suffix):
        whole = write_log(tmp_path / f"whole{suffix}", written)
        with open(whole, "rb") as f:
            data = f.read()
        cut = tmp_path / f"rlog{suffix}"
        cut.write_bytes(data[:len(data) * 6 // 10])
        rc, out, err = run(capsys, str(cut), "--out", str(tmp_path / "route"))
        assert rc == 2 and len(errors(err)) == 1 and "Traceback" not in err
        assert errors(err)[0].startswith(f"openpilot import: {cut}: ") and "up to the damage" in errors(err)[0]
        got, want = route_contents(out.strip()), expected(written)
        n = len(got["carState"])
        assert N_STEPS // 4 < n < N_STEPS and got["carParams"] == want["carParams"]
        # every message read is the one written; only what followed the cut (by file order) is missing
        assert all(g in want["carState"] for g in got["carState"]) and all(g in want["can"] for g in got["can"])
        assert Route(out.strip()).meta()["problems"] == [errors(err)[0].split(": ", 1)[1].split("; the route")[0]]

    @pytest.mark.parametrize("content", [b"hello, this is a text file\n", b"\x89PNG\r\n\x1a\n" + bytes(200),
                                         b"BZh9" + bytes(100), zstandard.ZstdCompressor().compress(b"x" * 1000), b""])
    def test_a_foreign_file_is_one_line_and_no_route(self, tmp_path, capsys, content):
        path = tmp_path / "notes.txt"
        path.write_bytes(content)
        rc, out, err = run(capsys, str(path), "--out", str(tmp_path / "route"))
        assert rc == 2 and out == "" and len(errors(err)) == 1 and "not an openpilot log" in err
        assert not os.path.exists(tmp_path / "route")

    def test_a_roadpilot_log_is_refused_with_a_hint(self, tmp_path, capsys, written):
        log = write_log(tmp_path / "rlog", written)
        rc, out, _ = run(capsys, log, "--out", str(tmp_path / "ours"))
        assert rc == 0
        rc, out, err = run(capsys, str(tmp_path / "ours" / "0" / "rlog.zst"), "--out", str(tmp_path / "route"))
        assert rc == 2 and out == "" and len(errors(err)) == 1 and "a roadpilot log?" in err
        assert not os.path.exists(tmp_path / "route")

    def test_a_foreign_file_inside_a_route_is_skipped_and_named(self, tmp_path, capsys, written):
        route = tmp_path / "2026-01-02--10-11-12"
        os.makedirs(route / "0")
        os.makedirs(route / "1")
        write_log(route / "0" / "rlog.zst", written)
        (route / "1" / "rlog.bz2").write_bytes(b"not a log at all")
        rc, out, err = run(capsys, str(route), "--out", str(tmp_path / "route"))
        assert rc == 2 and len(errors(err)) == 1 and f"{route / '1' / 'rlog.bz2'}: " in errors(err)[0]
        assert route_contents(out.strip())["carState"] == expected(written)["carState"]

    def test_refusals_before_any_work(self, tmp_path, capsys, written):
        log = write_log(tmp_path / "rlog.zst", written)
        (tmp_path / "taken").mkdir()
        for argv, says in [([log, "--car", "NOT_A_CAR"], "unknown platform"),
                           ([str(tmp_path / "missing")], "no such file"),
                           ([str(tmp_path / "taken")], "no rlog/qlog"),
                           ([log, "--out", str(tmp_path / "taken")], "already exists")]:
            rc, out, err = run(capsys, *argv)
            assert rc == 2 and out == "" and len(errors(err)) == 1 and says in err, (argv, err)

    def test_logreader_refuses_an_openpilot_log_in_one_line(self, tmp_path, written):
        for suffix in (".bz2", ".zst", ""):
            log = write_log(tmp_path / f"rlog{suffix}", written[:50])
            r = subprocess.run([sys.executable, "-m", "selfdrive.loggerd.logreader", log], capture_output=True,
                               text=True, timeout=60)
            assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
            assert "not a roadpilot log" in r.stderr and r.stdout == ""


# -- the road video: two segments, one with fcamera.hevc (a roadCameraState per frame, as an rlog has), one with only
# qcamera.ts (one in ten, as a qlog has); frame k of the drive is a flat grey picture of level GREY0 + GREY_STEP * k
FPS_NS = 50_000_000
FRAMES_PER_SEGMENT = 16
FIRST_FRAME_ID = 700
GREY0, GREY_STEP = 30, 6
VIDEO_KINDS = {"fcamera.hevc": ("hevc", "libx265", "roadEncodeIdx", 1, "rlog.zst"),
               "qcamera.ts": ("mpegts", "libx264", "qRoadEncodeIdx", 10, "qlog.bz2")}


def write_video(path, greys: list[int]) -> None:
    import av
    import numpy as np
    fmt, codec = VIDEO_KINDS[os.path.basename(str(path))][:2]
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=20)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        if codec == "libx265":
            stream.options = {"x265-params": "log-level=error"}
        for k, grey in enumerate(greys):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), grey, np.uint8), format="rgb24")
            frame.pts = k
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def camera_segment(route, n: int, video: str, phantom: bool = False) -> list[tuple[int, int, int, int, bool]]:
    """Writes segment n (log + video); returns each frame's (frameId, index logMonoTime, sof, eof, has a state)."""
    _, _, member, state_every, log_name = VIDEO_KINDS[video]
    folder = route / str(n)
    os.makedirs(folder)
    ks = range(n * FRAMES_PER_SEGMENT, (n + 1) * FRAMES_PER_SEGMENT)
    write_video(folder / video, [GREY0 + GREY_STEP * k for k in ks])
    events, frames = [], []
    for pos, k in enumerate([*ks, *([ks[-1] + 1] if phantom else [])]):  # the phantom: indexed, not in the video
        t = T0 + k * FPS_NS
        frame_id, sof, eof = FIRST_FRAME_ID + k, t - 30_000_000, t - 20_000_000
        if pos % state_every == 0:
            cam = WRITER.Event.new_message(logMonoTime=t)
            s = cam.init("roadCameraState")
            s.frameId, s.timestampSof, s.timestampEof, s.integLines = frame_id, sof, eof, 1234
            events.append((t, cam.to_bytes(), {}))
        idx = WRITER.Event.new_message(logMonoTime=t + 5_000_000)
        i = idx.init(member)
        i.frameId, i.segmentNum, i.segmentId, i.timestampSof, i.timestampEof = frame_id, n, pos, sof + 1, eof + 1
        i.type, i.encodeId, i.flags = "fullHEVC" if member == "roadEncodeIdx" else "qcameraH264", k, 8
        events.append((t + 5_000_000, idx.to_bytes(), {}))
        cs = WRITER.Event.new_message(logMonoTime=t + 1)
        cs.init("carState").vEgo = float(k)
        events.append((t + 1, cs.to_bytes(), {}))
        if pos < len(ks):
            frames.append((frame_id, t + 5_000_000, sof, eof, pos % state_every == 0))
    write_log(folder / log_name, events)
    return frames


class TestVideo:
    def test_each_indexed_frame_is_in_road_mp4_with_its_index_and_camera_state(self, tmp_path, capsys):
        from selfdrive.camerad.camerad import HEIGHT, WIDTH
        from tools.lib.framereader import FrameReader, frame_locations
        route = tmp_path / "op-route"
        frames = camera_segment(route, 0, "fcamera.hevc", phantom=True) + camera_segment(route, 1, "qcamera.ts")
        rc, out, err = run(capsys, str(route), "--out", str(tmp_path / "route"))
        assert rc == 0 and errors(err) == [], err
        evs = list(LogReader(out.strip()))
        states = {ev.roadCameraState.frameId: ev for ev in evs if ev.which() == "roadCameraState"}
        index = {ev.roadEncodeIdx.frameId: ev for ev in evs if ev.which() == "roadEncodeIdx"}
        assert sorted(index) == sorted(states) == [f[0] for f in frames]  # the phantom frame is left out
        locations = frame_locations(evs)
        readers: dict = {}
        for frame_id, t_idx, sof, eof, has_state in frames:
            idx, cam = index[frame_id], states[frame_id]
            assert idx.logMonoTime == t_idx and (idx.roadEncodeIdx.timestampSof, idx.roadEncodeIdx.timestampEof) == (
                (sof, eof) if has_state else (sof + 1, eof + 1))  # the camera's own times, else the index's
            assert cam.logMonoTime == (t_idx - 5_000_000 if has_state else t_idx)
            c = cam.roadCameraState
            assert (c.width, c.height, c.source, c.sourceOk) == (WIDTH, HEIGHT, "openpilot", True)
            loc = locations[frame_id]
            reader = readers.setdefault(loc.path, FrameReader(os.path.join(out.strip(), loc.path)))
            nv12 = reader.get(loc.position)
            assert nv12.shape == (HEIGHT * 3 // 2, WIDTH)
            grey = GREY0 + GREY_STEP * (frame_id - FIRST_FRAME_ID)
            # BT.601 luma of that grey, nearer to it than to the next frame's (colour conversions cost about 1.5)
            assert abs(float(nv12[:HEIGHT].mean()) - (16 + grey * 219 / 255)) < GREY_STEP * 219 / 255 / 2
        meta = Route(out.strip()).meta()["video"]
        assert meta["frames"] == len(frames) and meta["skipped"] == {"indexed frames not decoded": 1}
        assert [os.path.basename(f) for f in meta["files"]] == ["fcamera.hevc", "qcamera.ts"]

    def test_no_video_leaves_it_out(self, tmp_path, capsys):
        route = tmp_path / "op-route"
        camera_segment(route, 0, "fcamera.hevc")
        rc, out, err = run(capsys, str(route), "--out", str(tmp_path / "route"), "--no-video")
        assert rc == 0, err
        assert {ev.which() for ev in LogReader(out.strip())} == {"carState"}
        assert not os.path.exists(tmp_path / "route" / "0" / "road.mp4")
