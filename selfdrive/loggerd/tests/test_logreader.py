import os
import struct
import tracemalloc

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from cereal import messaging
from common.paths import routes_dir
from selfdrive.loggerd import logreader
from selfdrive.loggerd.logreader import MAX_FRAME_BYTES, LogError, LogReader
from selfdrive.loggerd.route import Route, RouteError, route_of, split_selector

CCTX = zstandard.ZstdCompressor(level=3, write_checksum=True)


def car_state(i: int, t: int | None = None) -> bytes:
    msg = messaging.new_message("carState")
    msg.carState.vEgo = float(i)
    msg.logMonoTime = 1_000_000 * i if t is None else t
    return msg.to_bytes()


def device_state(i: int, t: int) -> bytes:
    msg = messaging.new_message("deviceState")
    msg.deviceState.uptime = float(i)
    msg.logMonoTime = t
    return msg.to_bytes()


def write_log(path, frames: list[list[bytes]]) -> list[int]:
    """One zstd frame per list of messages, like loggerd writes; returns each frame's end offset."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ends, data = [], b""
    for msgs in frames:
        data += CCTX.compress(b"".join(msgs))
        ends.append(len(data))
    with open(path, "wb") as f:
        f.write(data)
    return ends


def counters(lr) -> list[int]:
    return [int(ev.carState.vEgo) for ev in lr if ev.which() == "carState"]


def make_route(name: str, n_segments: int, per_segment: int = 20) -> str:
    path = os.path.join(routes_dir(), name)
    for seg in range(n_segments):
        msgs = [car_state(seg * per_segment + i) for i in range(per_segment)]
        for log_type, keep in (("rlog", msgs), ("qlog", msgs[::10])):
            write_log(os.path.join(path, str(seg), f"{log_type}.zst"), [keep[:len(keep) // 2], keep[len(keep) // 2:]])
    return path


class TestReadFile:
    def test_whole_file_reads_back_in_order_without_problems(self, tmp_path):
        p = str(tmp_path / "rlog.zst")
        write_log(p, [[car_state(i) for i in range(f * 10, f * 10 + 10)] for f in range(3)])
        lr = LogReader(p)
        assert counters(lr) == list(range(30))
        assert lr.problems == []

    @pytest.mark.parametrize("cut", [1, 7, 30])
    def test_truncated_last_frame_reads_earlier_frames_and_reports(self, tmp_path, cut):
        p = str(tmp_path / "rlog.zst")
        ends = write_log(p, [[car_state(i) for i in range(f * 10, f * 10 + 10)] for f in range(3)])
        with open(p, "r+b") as f:
            f.truncate(ends[-1] - cut)
        lr = LogReader(p)
        got = counters(lr)
        assert got[:20] == list(range(20)) and got == list(range(len(got)))
        assert lr.truncated and all(path == p for path, _ in lr.truncated)
        assert "incomplete" in lr.truncated[0][1]

    def test_partial_message_at_the_end_is_reported_with_its_size(self, tmp_path):
        p = str(tmp_path / "rlog.zst")
        half = car_state(5)[:48]
        write_log(p, [[car_state(i) for i in range(5)] + [half]])
        lr = LogReader(p)
        assert counters(lr) == [0, 1, 2, 3, 4]
        assert lr.truncated == [(p, "48 bytes of an incomplete message at the end")]

    def test_cut_at_a_frame_boundary_is_a_clean_file(self, tmp_path):
        p = str(tmp_path / "rlog.zst")
        ends = write_log(p, [[car_state(i) for i in range(f * 10, f * 10 + 10)] for f in range(3)])
        with open(p, "r+b") as f:
            f.truncate(ends[1])
        lr = LogReader(p)
        assert counters(lr) == list(range(20)) and lr.problems == []

    def test_corrupt_middle_frame_is_skipped_and_the_rest_read(self, tmp_path):
        p = str(tmp_path / "rlog.zst")
        ends = write_log(p, [[car_state(i) for i in range(f * 10, f * 10 + 10)] for f in range(3)])
        with open(p, "r+b") as f:
            f.seek(ends[0] + 40)
            b = f.read(1)
            f.seek(ends[0] + 40)
            f.write(bytes([b[0] ^ 0xFF]))
        lr = LogReader(p)
        assert counters(lr) == list(range(10)) + list(range(20, 30))
        assert lr.corrupt and lr.corrupt[0][0] == p and "bad zstd frame" in lr.corrupt[0][1]
        assert lr.truncated == []

    def test_malformed_message_inside_a_frame_is_dropped_and_counted(self, tmp_path):
        bad = bytearray(car_state(1))
        struct.pack_into("<I", bad, 8, 1000 << 2)  # root pointer far outside the segment
        p = str(tmp_path / "rlog.zst")
        write_log(p, [[car_state(0), bytes(bad), car_state(2)]])
        lr = LogReader(p)
        assert counters(lr) == [0, 2]
        assert lr.corrupt == [(p, "1 malformed messages dropped (2 read)")]

    def test_empty_file_is_reported_not_raised(self, tmp_path):
        p = tmp_path / "rlog.zst"
        p.write_bytes(b"")
        lr = LogReader(str(p))
        assert list(lr) == [] and "empty" in lr.truncated[0][1]

    @settings(max_examples=40, deadline=None)
    @given(st.floats(0.0, 1.0))
    def test_any_cut_reads_a_prefix_and_never_raises(self, tmp_path_factory, frac):
        p = str(tmp_path_factory.mktemp("cut") / "rlog.zst")
        ends = write_log(p, [[car_state(i) for i in range(f * 7, f * 7 + 7)] for f in range(4)])
        cut = int(ends[-1] * frac)
        with open(p, "r+b") as f:
            f.truncate(cut)
        if cut < 4:  # not even the zstd magic survives: no longer recognisable as a log
            return
        got = counters(LogReader(p))
        assert got == list(range(len(got)))
        assert len(got) >= 7 * sum(e <= cut for e in ends)


def flip(path: str, at: int) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0xFF]))


def bomb(inflated: int, content_size: bool) -> bytes:
    """One zstd frame of `inflated` zero bytes (1 GiB packs into 33 KB), made in 1 MiB steps."""
    co = CCTX.compressobj(size=inflated if content_size else -1)
    step = bytes(1 << 20)
    return b"".join([co.compress(step) for _ in range(inflated >> 20)] + [co.flush()])


class TestDamage:
    """Damage anywhere in a file costs at most the frame it is in (loggerd writes one frame per flush)."""

    def five_frames(self, tmp_path) -> tuple[str, list[int]]:
        p = str(tmp_path / "rlog.zst")
        return p, write_log(p, [[car_state(i) for i in range(f * 10, f * 10 + 10)] for f in range(5)])

    def test_flipped_first_byte_loses_only_the_first_frame(self, tmp_path):
        p, ends = self.five_frames(tmp_path)
        flip(p, 0)
        lr = LogReader(p)  # not refused: the rest of the file is a log
        assert counters(lr) == list(range(10, 50))
        assert lr.corrupt == [(p, f"no zstd frame at byte 0: skipped {ends[0]} bytes")] and lr.truncated == []

    def test_a_flip_at_any_byte_loses_at_most_its_frame(self, tmp_path):
        p = str(tmp_path / "rlog.zst")
        ends = write_log(p, [[car_state(i) for i in range(f * 4, f * 4 + 4)] for f in range(3)])
        clean = open(p, "rb").read()
        for at in range(len(clean)):
            with open(p, "wb") as f:
                f.write(clean)
            flip(p, at)
            frame = next(k for k, end in enumerate(ends) if at < end)
            lr = LogReader(p)
            got = counters(lr)
            lost = set(range(12)) - set(got)
            assert got == sorted(got) and lost <= set(range(frame * 4, frame * 4 + 4)), (at, got)
            assert not lost or lr.problems, at

    @pytest.mark.parametrize("frame", [0, 2, 4])
    @pytest.mark.parametrize("offset", [0, 4, 6, 20, -5, -1])  # magic, header, first block header, data, checksum
    def test_flips_across_a_file(self, tmp_path, frame, offset):
        p, ends = self.five_frames(tmp_path)
        start = ends[frame - 1] if frame else 0
        flip(p, start + offset if offset >= 0 else ends[frame] + offset)
        lr = LogReader(p)
        assert counters(lr) == [i for i in range(50) if not frame * 10 <= i < frame * 10 + 10]
        assert len(lr.corrupt) == 1 and lr.corrupt[0][0] == p

    def test_a_one_frame_file_with_its_first_byte_flipped_is_refused(self, tmp_path):
        p = str(tmp_path / "rlog.zst")
        write_log(p, [[car_state(i) for i in range(10)]])
        flip(p, 0)
        with pytest.raises(LogError, match="rlog.zst: not a roadpilot log"):
            LogReader(p)

    @pytest.mark.parametrize("content_size", [True, False])
    def test_a_bomb_frame_is_skipped_without_inflating_it(self, tmp_path, content_size):
        p = str(tmp_path / "rlog.zst")
        first = CCTX.compress(b"".join(car_state(i) for i in range(10)))
        last = CCTX.compress(b"".join(car_state(i) for i in range(10, 20)))
        with open(p, "wb") as f:
            f.write(first + bomb(1 << 30, content_size) + last)  # 33 KB that inflates to 1 GiB
        tracemalloc.start()
        try:
            lr = LogReader(p)
            got = counters(lr)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert got == list(range(20))
        assert peak < 4 << 20  # the bomb was judged by its block headers: none of it was inflated
        assert len(lr.corrupt) == 1 and f"at byte {len(first)}" in lr.corrupt[0][1]
        assert f"inflates to up to {1 << 30} bytes" in lr.corrupt[0][1]

    def test_the_frame_cap_sits_between_a_log_frame_and_a_bomb(self, tmp_path, monkeypatch):
        monkeypatch.setattr(logreader, "MAX_FRAME_BYTES", 1 << 20)
        p = str(tmp_path / "rlog.zst")
        msgs = b"".join(car_state(i) for i in range(10))
        with open(p, "wb") as f:
            f.write(CCTX.compress(msgs) + bomb(2 << 20, False) + CCTX.compress(msgs))
        lr = LogReader(p, sort_by_time=False)
        assert counters(lr) == list(range(10)) * 2 and "a log frame is at most 1048576" in lr.corrupt[0][1]
        assert MAX_FRAME_BYTES > 8 << 20  # loggerd's frames (MAX_BUFFERED plus a message) are never refused

    def test_the_check_at_construction_reads_only_the_first_frame(self, tmp_path, monkeypatch):
        p, ends = self.five_frames(tmp_path)
        read = []
        pread = os.pread
        monkeypatch.setattr(os, "pread", lambda fd, n, at: read.append(n) or pread(fd, n, at))
        LogReader(p)
        assert 0 < sum(read) <= ends[0] + 64  # the first frame, and its headers looked at once more
        read.clear()
        assert counters(LogReader(p)) == list(range(50))
        assert sum(read) > ends[-1]

    def test_findings_in_a_segment_that_is_no_log_are_not_reported(self):
        path = make_route("z", 2)
        bad = os.path.join(path, "1", "rlog.zst")
        with open(bad, "wb") as f:
            f.write(CCTX.compress(b"plain text, no capnp in it\n" * 40) + CCTX.compress(b"more text\n" * 40))
        lr = LogReader("z")
        assert counters(lr) == list(range(20))
        assert lr.corrupt == [] and len(lr.skipped) == 1 and "not capnp Events" in lr.skipped[0][1]


class TestMain:
    def test_damaged_but_readable_prints_counts_and_problems(self, tmp_path, capsys):
        p = str(tmp_path / "rlog.zst")
        write_log(p, [[car_state(i) for i in range(f * 10, f * 10 + 10)] for f in range(3)])
        flip(p, 0)
        assert logreader.main([p]) == 1
        out = capsys.readouterr().out.splitlines()
        assert out[0].split() == ["carState", "20"] and out[1].startswith(f"PROBLEM {p}: no zstd frame at byte 0")

    def test_whole_log_and_qlog_of_a_route(self, capsys):
        path = make_route("q", 1)
        assert logreader.main([path, "qlog"]) == 0
        assert capsys.readouterr().out.split() == ["carState", "2"]

    @pytest.mark.parametrize("argv", [[], ["a", "b", "c"], ["x", "blog"]])
    def test_bad_arguments_are_one_line_and_status_2(self, argv, capsys):
        with pytest.raises(SystemExit) as e:
            logreader.main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and "see --help" in err


class TestNotALog:
    def test_random_bytes_raise_naming_the_file(self, tmp_path):
        p = tmp_path / "random.bin"
        p.write_bytes(os.urandom(4096))
        with pytest.raises(LogError, match="random.bin.*not zstd"):
            LogReader(str(p))

    def test_text_file_raises(self, tmp_path):
        p = tmp_path / "notes.txt"
        p.write_text("these are not the logs you are looking for\n" * 20)
        with pytest.raises(LogError, match="notes.txt.*not a roadpilot log"):
            LogReader(str(p))

    def test_zstd_that_is_not_capnp_events_raises(self, tmp_path):
        p = tmp_path / "text.zst"
        p.write_bytes(CCTX.compress(b"hello, world, this is plain text\n" * 50))
        with pytest.raises(LogError, match="text.zst.*not capnp Events"):
            LogReader(str(p))

    def test_zstd_of_framed_garbage_raises(self, tmp_path):
        p = tmp_path / "garbage.zst"
        p.write_bytes(CCTX.compress(struct.pack("<II", 0, 2) + b"\xff" * 16))
        with pytest.raises(LogError, match="garbage.zst"):
            LogReader(str(p))

    def test_log_error_is_a_value_error(self):
        assert issubclass(LogError, ValueError)


class TestRoutes:
    def test_route_by_name_reads_every_segment_in_order(self):
        make_route("2026-01-02--03-04-05", 3)
        lr = LogReader("2026-01-02--03-04-05")
        assert counters(lr) == list(range(60)) and lr.problems == []
        assert len(lr.files) == 3

    def test_route_folder_segment_folder_and_qlog(self):
        path = make_route("r", 2)
        assert counters(LogReader(path)) == list(range(40))
        assert counters(LogReader(os.path.join(path, "1"))) == list(range(20, 40))
        assert counters(LogReader(path, log_type="qlog")) == [0, 10, 20, 30]

    def test_route_of_finds_the_route_from_any_of_its_parts(self, tmp_path):
        path = make_route("parts", 2)
        for source in (path, "parts", "parts/1", os.path.join(path, "1"), os.path.join(path, "0", "rlog.zst")):
            r = route_of(source)
            assert r is not None and r.path == os.path.abspath(path), source
        assert route_of(str(tmp_path)) is None and route_of("no-such-route") is None
        assert Route(path).meta() == {}  # no route.json (a route made by hand): nothing to say
        with open(os.path.join(path, "route.json"), "w") as f:
            f.write("{not json")
        assert Route(path).meta() == {}

    @pytest.mark.parametrize("text, why", [(b"{not json", "JSONDecodeError"), (b"\xc3\x28", "UnicodeDecodeError"),
                                           (b"[" * 100_000, "RecursionError"), (b"[1, 2]", "a JSON list")])
    def test_an_unreadable_route_json_is_an_error_to_read_meta_and_nothing_to_meta(self, text, why):
        path = make_route("j", 1)
        assert Route(path).read_meta() == {}  # none at all: a route made by hand
        with open(os.path.join(path, "route.json"), "wb") as f:
            f.write(text)
        with pytest.raises(RouteError, match=f"route.json: unreadable.*{why}"):
            Route(path).read_meta()
        assert Route(path).meta() == {}

    @pytest.mark.parametrize("selector,segments", [("1", [1]), ("1:3", [1, 2]), ("2:", [2, 3]), (":2", [0, 1]),
                                                   ("-1", [3]), ("0:100", [0, 1, 2, 3])])
    def test_segment_selectors(self, selector, segments):
        path = make_route("sel", 4, per_segment=10)
        want = [10 * s + i for s in segments for i in range(10)]
        assert counters(LogReader(f"sel/{selector}")) == want
        assert counters(LogReader(f"{path}/{selector}")) == want

    @pytest.mark.parametrize("source,match", [("nope", "no route"), ("sel/9", "no segment 9"),
                                              ("sel/-5", "no segment -5"), ("sel/5:9", "no segments selected")])
    def test_bad_route_or_selection_raises(self, source, match):
        make_route("sel", 2, per_segment=5)
        with pytest.raises(LogError, match=match):
            LogReader(source)

    def test_bad_selector_syntax(self):
        make_route("sel", 1, per_segment=5)
        with pytest.raises(RouteError, match="bad segment selector"):
            Route("sel").select("1-2")
        assert split_selector("sel/a:b") == ("sel/a:b", None)

    def test_corrupt_middle_segment_is_skipped_and_reported(self):
        path = make_route("c", 3)
        bad = os.path.join(path, "1", "rlog.zst")
        with open(bad, "wb") as f:
            f.write(os.urandom(2000))
        lr = LogReader("c")
        assert counters(lr) == list(range(20)) + list(range(40, 60))
        assert len(lr.skipped) == 1 and lr.skipped[0][0] == bad and "not zstd" in lr.skipped[0][1]

    def test_missing_log_in_a_segment_is_reported(self):
        path = make_route("m", 3)
        os.remove(os.path.join(path, "2", "rlog.zst"))
        lr = LogReader("m")
        assert counters(lr) == list(range(40))
        assert lr.skipped == [(os.path.join(path, "2", "rlog.zst"), "missing")]

    def test_route_with_nothing_readable_raises(self):
        path = make_route("dead", 2)
        for seg in ("0", "1"):
            with open(os.path.join(path, seg, "rlog.zst"), "w") as f:
                f.write("junk")
        with pytest.raises(LogError, match="no readable log"):
            list(LogReader("dead"))

    def test_a_route_by_name_is_found_under_the_routes_folder(self):
        make_route("a-route", 1)
        assert [s.number for s in Route("a-route").segments] == [0]


class TestOrder:
    def test_sorted_across_segments_when_a_message_crosses_the_boundary(self):
        root = os.path.join(routes_dir(), "o")
        # segment 1 starts with a message created before the end of segment 0 (it waited in a socket)
        write_log(os.path.join(root, "0", "rlog.zst"), [[car_state(i, t=i * 10) for i in range(10)]])
        write_log(os.path.join(root, "1", "rlog.zst"), [[car_state(85, t=85)] + [car_state(i, t=i * 10)
                                                                                for i in range(10, 20)]])
        times = [ev.logMonoTime for ev in LogReader("o")]
        assert times == sorted(times) and len(times) == 21
        unsorted = [ev.logMonoTime for ev in LogReader("o", sort_by_time=False)]
        assert unsorted != sorted(unsorted) and sorted(unsorted) == times

    def test_sort_is_stable_for_equal_times(self, tmp_path):
        p = str(tmp_path / "rlog.zst")
        write_log(p, [[device_state(i, t=5) for i in range(5)] + [device_state(9, t=1)]])
        assert [int(ev.deviceState.uptime) for ev in LogReader(p)] == [9, 0, 1, 2, 3, 4]

    def test_services_filter(self, tmp_path):
        p = str(tmp_path / "rlog.zst")
        write_log(p, [[car_state(i, t=2 * i) for i in range(5)] + [device_state(i, t=2 * i + 1) for i in range(5)]])
        assert [ev.which() for ev in LogReader(p, services=["deviceState"])] == ["deviceState"] * 5
        lr = LogReader(p)
        assert [int(ev.carState.vEgo) for ev in lr.filter(["carState"])] == list(range(5))
        assert [ev.which() for ev in lr][:2] == ["carState", "deviceState"]

    def test_events_stay_readable_after_iteration(self, tmp_path):
        import gc
        p = str(tmp_path / "rlog.zst")
        write_log(p, [[car_state(i) for i in range(50)], [car_state(i) for i in range(50, 60)]])
        evs = list(LogReader(p))
        gc.collect()
        assert [int(ev.carState.vEgo) for ev in evs] == list(range(60))
