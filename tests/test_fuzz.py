"""Fuzz targets for every place where bytes from disk or a socket enter roadpilot.

Each target checks its parser's contract, not only that it survives: what it may return, the one exception it
may raise, and what it must report. Budgets are bounded and derandomized (no example database), so CI runs the
same inputs every time and the file stays well under a minute on 2 cores. For a longer local hunt multiply every
budget: `ROADPILOT_FUZZ_SCALE=50 .venv/bin/python -m pytest -q tests/test_fuzz.py`.

Bugs these targets found are fixed and pinned by a regression test beside the target, with its minimal reproducer.
A new one: pin it as a strict xfail, let the target tolerate exactly those inputs meanwhile (a predicate beside it
naming the xfail), and when it is fixed turn the xfail into a regression test here and delete the tolerance.
"""

import bisect
import faulthandler
import io
import json
import math
import os
import struct
import time

import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from numpy.lib import format as npy_format

from cereal import car, messaging
from cereal.messaging import MalformedMessage, log_from_bytes
from cereal.services import SERVICES
from common.params import Params, decode, encode
from common.params_keys import KEYS, ParamType, check_calibration, check_value
from hardware.can_backends import MAX_BUS, MAX_EXT_ADDRESS, Backend, BackendError, open_backend
from hardware.canbridged import DASHCAM, CanBridge, CarGate, Daemon, handle_sendcan, safety_from_car_params
from hardware.sim_backend import FRAME_HEADER, pack_frames, unpack_frames
from selfdrive.camerad.sources.sim import MAGIC, SIM_HEADER, VERSION, SimSource
from selfdrive.car.car_params import car_params_from_bytes
from selfdrive.locationd.calibration import MAX_ANGLE, MAX_BLOCKS, Calibrator
from selfdrive.loggerd.framing import (
    MAX_MESSAGE_BYTES,
    FramingError,
    event_mono_time,
    event_which,
    is_one_message,
    message_size,
    restamped,
)
from selfdrive.loggerd.logreader import LogError, LogReader
from selfdrive.loggerd.route import Route, RouteError
from selfdrive.loggerd.route_writer import FrameWriter, RouteWriter
from selfdrive.logmessaged import to_event
from selfdrive.ui.hub import Client, Hub
from tools.importers import comma2k19

SCALE = float(os.environ.get("ROADPILOT_FUZZ_SCALE", "1"))
NOW_NS = 1_000_000_000_000  # the clock handle_sendcan is called with; valid sendcan messages are stamped with it


def budget(n: int) -> settings:
    # deadline None: this machine is slow and shared, a slow example is not a failure here
    return settings(max_examples=max(1, round(n * SCALE)), deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


# --- inputs ---------------------------------------------------------------------------------------------------

# u32 values that mean something in capnp framing and pointers: zero/null, one, all ones, sign bits, far/other
# pointer tags, offsets just outside a small segment. Random flips rarely hit these.
WORDS = (0, 1, 2, 3, 4, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFC, 0xFFFFFFFD, 0xFFFFFFFE, 1000 << 2,
         (1000 << 2) | 1, 0x10000, 0x00010000 | 1, 511, 512, 513)

# One edit of a byte string. Positions are taken modulo the length, so one strategy fits inputs of any size.
EDIT = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 20), st.integers(1, 255)),
    st.tuples(st.just("word"), st.integers(0, 1 << 20), st.sampled_from(WORDS) | st.integers(0, 2**32 - 1)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 20), st.binary(min_size=1, max_size=24)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 20), st.integers(1, 24)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 20), st.just(0)),
)
EDITS = st.lists(EDIT, min_size=1, max_size=4)


def apply_edits(data: bytes, edits) -> bytes:
    b = bytearray(data)
    for op, pos, arg in edits:
        at = pos % (len(b) + 1)
        if op == "flip":
            if b:
                b[at % len(b)] ^= arg
        elif op == "word":
            at &= ~3  # capnp words are 8-byte aligned, their halves 4: hit pointers and sizes where they are
            if at + 4 <= len(b):
                struct.pack_into("<I", b, at, arg)
        elif op == "insert":
            b[at:at] = arg
        elif op == "delete":
            del b[at:at + arg]
        else:
            del b[at:]
    return bytes(b)


def sample_events() -> list[bytes]:
    """Valid Events of several shapes: scalars, lists, text, nested lists of structs, a multi-segment message."""
    out = []
    m = messaging.new_message("carState")
    m.carState.vEgo, m.carState.steeringAngleDeg = 12.5, -3.0
    out.append(m)
    m = messaging.new_message("can", 3)
    for i, c in enumerate(m.can):
        c.address, c.dat, c.src = 0x100 + i, bytes(range(i * 3)), i
    out.append(m)
    m = messaging.new_message("sendcan", 2)
    for i, c in enumerate(m.sendcan):
        c.address, c.dat, c.src = 0x2E4, bytes(5), i
    out.append(m)
    m = messaging.new_message("logMessage")
    m.logMessage.msg, m.logMessage.name, m.logMessage.levelnum = '{"msg": "hello"}', "card", 20
    out.append(m)
    m = messaging.new_message("longitudinalPlan")
    m.longitudinalPlan.t, m.longitudinalPlan.accels = [0.0, 0.5, 1.0], [0.1, 0.2, 0.3]
    out.append(m)
    m = messaging.new_message("liveCalibration")
    m.liveCalibration.rpyCalib, m.liveCalibration.validBlocks = [0.0, 0.01, -0.02], 4
    out.append(m)
    m = messaging.new_message("deviceState")
    m.deviceState.cpuTempC = [40.0, 41.0]
    out.append(m)
    m = messaging.new_message("carParams")
    m.carParams = car_params_sample()
    out.append(m)
    big = messaging.new_message("can", 400)  # past pycapnp's first segment: a two-segment message
    for c in big.can:
        c.address, c.dat = 5, bytes(8)
    out.append(big)
    return [x.to_bytes() for x in out]


def car_params_sample():
    cp = car.CarParams.new_message()
    cp.carFingerprint, cp.brand, cp.mass, cp.steerRatio = "TOYOTA_RAV4", "toyota", 1700.0, 15.0
    sc = cp.init("safetyConfigs", 1)
    sc[0].safetyModel, sc[0].safetyParam = "toyota", 73
    return cp


EVENTS = sample_events()
SENDCAN = EVENTS[2]
assert struct.unpack_from("<I", EVENTS[-1])[0] == 1  # the last one really has two segments
CAR_PARAMS = car_params_sample().to_bytes()

# arbitrary bytes, a valid Event edited, or a valid segment table over random words
MESSAGE_BYTES = st.one_of(
    st.binary(max_size=300),
    st.builds(apply_edits, st.sampled_from(EVENTS), EDITS),
    st.builds(lambda words: struct.pack("<II", 0, len(words) // 8) + words[:len(words) // 8 * 8],
              st.binary(min_size=8, max_size=200)),
)

JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10))
JSON_VALUE = st.recursive(JSON_SCALAR, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)


def nested(depth: int, opener: str = "[") -> str:
    return opener * depth + ("]" * depth if opener == "[" else "")


JSON_TEXT = st.one_of(
    st.builds(json.dumps, JSON_VALUE),  # allow_nan: NaN and Infinity are what Python's json reads back too
    st.text(max_size=60),
    st.builds(nested, st.integers(0, 20_000), st.sampled_from(['[', '{"a":'])),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "9" * 400, "9" * 5000, '"\\ud800"']),
)


# --- 1. logs: LogReader -------------------------------------------------------------------------------------

class CleanLog:
    """A small rlog as loggerd writes it: one zstd frame per message group, each message with its own time."""

    def __init__(self, path: str, n_frames: int = 5):
        self.times: list[list[int]] = []   # logMonoTime of each frame's messages
        self.which: dict[int, str] = {}
        self.ends: list[int] = []           # each frame's end offset in the file
        w = FrameWriter(path)
        t = 1_000
        for f in range(n_frames):
            group = []
            for k in range(4):
                ev = log_from_bytes(EVENTS[(f * 4 + k) % len(EVENTS)]).as_builder()
                ev.logMonoTime = t
                w.add(ev.to_bytes())
                self.which[t] = ev.which()
                group.append(t)
                t += 1_000
            w.flush()
            self.times.append(group)
            self.ends.append(w.written)
        w.close()
        with open(path, "rb") as f:
            self.data = f.read()
        self.frames = [self.data[a:b] for a, b in zip([0, *self.ends], self.ends, strict=False)]
        self.all_times = [t for g in self.times for t in g]


@pytest.fixture(scope="module")
def clean_log(tmp_path_factory) -> CleanLog:
    return CleanLog(str(tmp_path_factory.mktemp("clean") / "rlog.zst"))


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory) -> str:
    # module-scoped: hypothesis runs many examples in one test, a function-scoped tmp_path would be shared anyway
    return str(tmp_path_factory.mktemp("fuzz"))


def write(path: str, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return path


def read_log(source: str):
    """(events, lr) or (None, LogError): the only two outcomes LogReader may have."""
    try:
        lr = LogReader(source, sort_by_time=False)
        return list(lr), lr
    except LogError as e:
        return None, e


def assert_reports_are_well_formed(lr) -> None:
    for kind in (lr.truncated, lr.corrupt, lr.skipped):
        assert all(isinstance(p, str) and isinstance(w, str) and w for p, w in kind)


def zstd_frame(content: bytes, checksum: bool) -> bytes:
    return zstandard.ZstdCompressor(write_checksum=checksum).compress(content)


# A file assembled from pieces: the clean log's frames in any order (dropped, repeated), halves of them, random
# bytes, zstd frames of random bytes, and frames whose inflated messages were edited (zstd-valid, capnp-damaged).
PIECE = st.one_of(
    st.tuples(st.just("frame"), st.integers(0, 4), st.just(None)),
    st.tuples(st.just("half"), st.integers(0, 4), st.integers(1, 10_000)),
    st.tuples(st.just("garbage"), st.just(0), st.binary(min_size=1, max_size=40)),
    st.tuples(st.just("zgarbage"), st.booleans(), st.binary(max_size=80)),
    st.tuples(st.just("zedited"), st.integers(0, 4), EDITS),
)


def assemble(log: CleanLog, pieces) -> bytes:
    out = []
    for kind, a, b in pieces:
        if kind == "frame":
            out.append(log.frames[a])
        elif kind == "half":
            out.append(log.frames[a][:b % len(log.frames[a])])
        elif kind == "garbage":
            out.append(b)
        elif kind == "zgarbage":
            out.append(zstd_frame(b, a))
        else:
            content = zstandard.ZstdDecompressor().decompress(log.frames[a])
            out.append(zstd_frame(apply_edits(content, b), True))
    return b"".join(out)


class TestLogReader:
    @budget(400)
    @given(at=st.integers(0, 1 << 20), mask=st.integers(1, 255))
    @example(at=0, mask=0xFF)      # the first frame's magic
    @example(at=4, mask=0x04)      # the first frame's header descriptor: the checksum flag
    @example(at=-1, mask=0x01)     # the last checksum byte
    def test_a_flipped_byte_costs_at_most_its_frame(self, clean_log, work_dir, at, mask):
        at %= len(clean_log.data)
        data = bytearray(clean_log.data)
        data[at] ^= mask
        p = write(os.path.join(work_dir, "flip.zst"), bytes(data))
        evs, lr = read_log(p)
        assert evs is not None, f"a log of {len(clean_log.ends)} frames refused over one flipped byte: {lr}"
        got = [ev.logMonoTime for ev in evs]
        kept = set(got)
        assert got == [t for t in clean_log.all_times if t in kept], "events out of order, repeated or invented"
        lost = set(clean_log.all_times) - kept
        frame = bisect.bisect_right(clean_log.ends, at)
        assert lost <= set(clean_log.times[frame]), f"byte {at} is in frame {frame}, lost {sorted(lost)}"
        assert not lost or lr.corrupt or lr.truncated, "messages lost without a word"
        assert all(ev.which() == clean_log.which[ev.logMonoTime] for ev in evs)
        assert_reports_are_well_formed(lr)

    @budget(500)
    @given(pieces=st.lists(PIECE, min_size=1, max_size=7), edits=st.none() | EDITS)
    @example(pieces=[("frame", 0, None), ("garbage", 0, b"\x28\xb5\x2f\xfd"), ("frame", 1, None)], edits=None)
    @example(pieces=[("half", 2, 30), ("half", 3, 9999)], edits=None)
    @example(pieces=[("zgarbage", True, bytes(16))], edits=None)
    def test_any_damage_yields_known_events_or_raises_log_error(self, clean_log, work_dir, pieces, edits):
        data = assemble(clean_log, pieces)
        if edits is not None:
            data = apply_edits(data, edits)
        p = write(os.path.join(work_dir, "damaged.zst"), data)
        evs, lr = read_log(p)
        if evs is None:
            assert str(p) in str(lr)  # a LogError names the file
            return
        assert all(ev.which() in SERVICES for ev in evs)
        assert all(isinstance(ev.logMonoTime, int) for ev in evs)
        assert_reports_are_well_formed(lr)
        intact = edits is None and all(kind == "frame" for kind, _, _ in pieces)
        if intact:  # whole frames, in any order: every message of each comes back, and nothing is reported
            assert [ev.logMonoTime for ev in evs] == [t for _, a, _ in pieces for t in clean_log.times[a]]
            assert lr.problems == []

    @budget(150)
    @given(damaged=st.integers(0, 2), pieces=st.lists(PIECE, min_size=0, max_size=4), edits=st.none() | EDITS)
    def test_a_damaged_segment_costs_only_itself(self, clean_log, work_dir, damaged, pieces, edits):
        route = os.path.join(work_dir, "route")
        for seg in range(3):
            os.makedirs(os.path.join(route, str(seg)), exist_ok=True)
            data = clean_log.data
            if seg == damaged:
                data = assemble(clean_log, pieces)
                data = apply_edits(data, edits) if edits is not None else data
            write(os.path.join(route, str(seg), "rlog.zst"), data)
        evs, lr = read_log(route)
        assert evs is not None, f"two intact segments, yet the route is refused: {lr}"
        counts = {t: 0 for t in clean_log.all_times}
        for ev in evs:
            assert ev.which() in SERVICES
            if ev.logMonoTime in counts:
                counts[ev.logMonoTime] += 1
        # the two intact segments hold every message once each (the damaged one may add its own copies)
        assert all(n >= 2 for n in counts.values())
        assert all(p.startswith(os.path.join(route, str(damaged))) for p, _ in lr.problems)
        assert_reports_are_well_formed(lr)

    def test_bad_message_header_in_an_intact_frame_costs_only_its_frame(self, clean_log, tmp_path):
        # loggerd's frames hold whole messages: a size header claiming more than its frame holds loses that frame's
        # rest, not every frame after it
        content = bytearray(zstandard.ZstdDecompressor().decompress(clean_log.frames[1]))
        first = message_size(content)
        struct.pack_into("<I", content, first + 4, 100_000)  # the second message claims 800 KB
        data = clean_log.frames[0] + zstd_frame(bytes(content), True) + b"".join(clean_log.frames[2:])
        lr = LogReader(write(str(tmp_path / "rlog.zst"), data), sort_by_time=False)
        got = [ev.logMonoTime for ev in lr]
        assert got == clean_log.times[0] + clean_log.times[1][:1] + [t for f in (2, 3, 4) for t in clean_log.times[f]]
        assert lr.truncated == [] and len(lr.corrupt) == 1 and "incomplete message" in lr.corrupt[0][1]


# --- 2. params -------------------------------------------------------------------------------------------------

def typed_value(t: ParamType):
    return {
        ParamType.STR: st.text(max_size=20),
        ParamType.BYTES: st.binary(max_size=40),
        ParamType.INT: st.integers(),
        ParamType.FLOAT: st.floats(),
        ParamType.BOOL: st.booleans(),
        ParamType.JSON: JSON_VALUE,
    }[t]


def calibration_json():
    num = st.one_of(st.floats(), st.integers(), st.text(max_size=3), st.none(), st.booleans())
    return st.builds(lambda rpy, blocks, valid, drop: json.dumps(
        {k: v for k, v in {"rpy": rpy, "blocks": blocks, "valid_blocks": valid}.items() if k not in drop}),
        st.lists(num, max_size=4) | num,
        st.lists(st.lists(num, max_size=3) | num, max_size=10) | num,
        num | st.integers(-5, 2_000_000),
        st.sets(st.sampled_from(["rpy", "blocks", "valid_blocks"]), max_size=1))


@st.composite
def param_file(draw):
    key = draw(st.sampled_from(sorted(KEYS)))
    k = KEYS[key]

    def written(v):  # what put would write for v, also for values put refuses (encode does not check)
        try:
            return encode(k, v)
        except (TypeError, ValueError, UnicodeEncodeError):
            return b""

    raw = draw(st.one_of(
        st.binary(max_size=80),
        st.builds(str.encode, JSON_TEXT),
        st.builds(written, typed_value(k.type)),
        st.builds(lambda v: str(v).encode(), st.integers() | st.floats()),
        st.sampled_from([b"0", b"1", b" 1\n", b"true", b"\xff\xfe", b"", b"1_000", b"nan", b"-inf", b"0x10"]),
        st.builds(str.encode, calibration_json()),
        st.builds(apply_edits, st.just(CAR_PARAMS), EDITS),
        st.sampled_from([b"0" * k.max_bytes, b"0" * (k.max_bytes + 1)]) if k.max_bytes <= 64 * 1024 else st.nothing(),
    ))
    return key, raw


class TestParams:
    @budget(600)
    @given(param_file())
    @example(("ParamsReset", b"[]"))
    @example(("LongitudinalPersonality", b"3"))
    @example(("LongitudinalPersonality", b"1e999"))
    @example(("LiveTorqueParameters", b'{"car": "x", "latAccelFactor": NaN}'))
    @example(("ParamsReset", b'{"a": 1e999}'))
    def test_get_returns_the_default_or_a_value_put_accepts(self, key_raw):
        key, raw = key_raw
        params = Params()
        write(os.path.join(params.root, key), raw)
        k = KEYS[key]
        value = params.get(key)
        if value is None:
            assert k.default is None or k.type is ParamType.JSON  # JSON null is a value like any other
            return
        assert check_value(k, value) == value or value == k.default
        # what get hands out, put can write and get reads back the same
        assert decode(k, encode(k, check_value(k, value))) == value

    @pytest.mark.parametrize("key, raw", [("ParamsReset", b"NaN"), ("ParamsReset", b'{"a": Infinity}'),
                                          ("LiveTorqueParameters", b'{"a": [-1e999]}')])
    def test_json_nan_and_infinity_read_as_corrupt(self, key, raw):
        # put refuses them (and FLOAT keys read them as corrupt): a JSON key's file holding one is corrupt too
        params = Params()
        write(os.path.join(params.root, key), raw)
        assert params.get(key) == KEYS[key].default and "non-finite" in params.corrupt[key]


# --- 3, 4. messages: log_from_bytes and framing --------------------------------------------------------------

class TestMessages:
    @budget(1500)
    @given(dat=MESSAGE_BYTES, as_view=st.booleans())
    @example(dat=b"", as_view=False)
    @example(dat=struct.pack("<II", 511, 0) + bytes(2048), as_view=True)
    def test_log_from_bytes_is_an_event_or_malformed(self, dat, as_view):
        try:
            ev = log_from_bytes(memoryview(dat) if as_view else dat)
        except MalformedMessage:
            return
        assert ev.which() in SERVICES
        assert isinstance(ev.logMonoTime, int) and isinstance(ev.valid, bool)
        getattr(ev, ev.which())

    @budget(1500)
    @given(buf=st.binary(max_size=120) | st.builds(apply_edits, st.sampled_from(EVENTS), EDITS),
           off=st.integers(0, 200), kind=st.sampled_from([bytes, bytearray, memoryview]))
    @example(buf=struct.pack("<II", 0, 0), off=0, kind=bytes)
    @example(buf=struct.pack("<III", 1, 2**31, 2**31), off=0, kind=bytes)
    def test_message_size_is_a_size_none_or_framing_error(self, buf, off, kind):
        off = min(off, len(buf))
        try:
            size = message_size(kind(buf), off)
        except FramingError:
            assert not is_one_message(buf[off:])
            return
        if size is None:  # the header itself is incomplete
            avail = len(buf) - off
            assert avail < 4 or avail < (4 + 4 * (struct.unpack_from("<I", buf, off)[0] + 1) + 7) & ~7
            return
        assert size % 8 == 0 and 16 <= size <= MAX_MESSAGE_BYTES
        if off + size <= len(buf):
            assert is_one_message(buf[off:off + size])
        assert is_one_message(buf[off:]) == (len(buf) - off == size)

    @budget(1500)
    @given(dat=MESSAGE_BYTES)
    @example(dat=EVENTS[-1])
    def test_event_which_agrees_with_pycapnp(self, dat):
        # and so do event_mono_time and restamped (loggerd's latched copies), which read and write the same root
        if not is_one_message(dat):  # event_which's precondition: loggerd checks it first
            return
        which = event_which(dat)
        assert which is None or which in SERVICES
        new = restamped(dat, 0x0123456789ABCDEF)
        assert new is None or len(new) == len(dat)
        try:
            ev = log_from_bytes(dat)
        except MalformedMessage:
            return  # garbage pycapnp refuses may still carry a readable tag: loggerd records it, LogReader drops it
        assert which == ev.which()
        assert event_mono_time(dat) == ev.logMonoTime
        if new is not None:
            again = log_from_bytes(new)
            assert (again.which(), again.logMonoTime) == (which, 0x0123456789ABCDEF)


# --- 5. CarParams --------------------------------------------------------------------------------------------

CAR_PARAMS_BYTES = st.one_of(st.binary(max_size=200), st.builds(apply_edits, st.just(CAR_PARAMS), EDITS),
                             st.sampled_from(EVENTS))


def forked(fn, *args) -> str:
    """What `fn(*args)` says (a string), run in a forked child: pycapnp 2.1.0 aborts the whole process (SIGABRT,
    uncatchable) when as_builder() meets an out-of-bounds pointer, and one fuzz input must not take pytest down."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running any of pytest's teardown
        os.close(r)
        faulthandler.disable()  # an abort is the expected outcome here, not a traceback for pytest's terminal
        try:
            out = str(fn(*args))
        except BaseException as e:  # noqa: BLE001 - the parent judges every outcome
            out = f"raised {type(e).__name__}: {str(e)[:200]}"
        os.write(w, out.encode()[:4096])
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        said = f.read().decode()
    _, status = os.waitpid(pid, 0)
    return f"killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else said


def car_params_outcome(raw: bytes) -> str:
    try:
        cp = car_params_from_bytes(raw)
    except ValueError:
        return "ValueError"
    if not isinstance(cp.carFingerprint, str):
        return f"carFingerprint {cp.carFingerprint!r}"
    # a builder: card writes it back (param and carParams message), and it must read back the same
    again = car_params_from_bytes(cp.to_bytes())
    if again.carFingerprint != cp.carFingerprint or len(again.safetyConfigs) != len(cp.safetyConfigs):
        return "differs after a round trip"
    return "CarParams"


def car_params_with_a_bad_pointer() -> bytes:
    """A CarParams whose carFingerprint text pointer points 1000 words past its segment (one damaged word)."""
    cp = car.CarParams.new_message()
    cp.carFingerprint = "A"
    dat = bytearray(cp.to_bytes())
    root = struct.unpack_from("<Q", dat, 8)[0]
    pointers = 16 + 8 * ((root >> 32) & 0xFFFF)  # after the segment table, the root pointer and the data section
    at = next(pointers + 8 * i for i in range(root >> 48) if struct.unpack_from("<Q", dat, pointers + 8 * i)[0])
    struct.pack_into("<I", dat, at, (1000 << 2) | 1)
    return bytes(dat)


class TestCarParams:
    @budget(400)
    @given(raw=CAR_PARAMS_BYTES)
    @example(raw=CAR_PARAMS)
    def test_car_params_from_bytes_is_car_params_or_value_error(self, raw):
        assert forked(car_params_outcome, raw) in ("CarParams", "ValueError")

    def test_car_params_with_a_bad_pointer_is_a_value_error(self):
        # pycapnp's as_builder() aborted the process (SIGABRT) on it: card died on a damaged CarParams param
        assert forked(car_params_outcome, car_params_with_a_bad_pointer()) == "ValueError"

    def test_car_params_with_an_unterminated_text_is_a_value_error(self):
        # reading such a Text through a pycapnp reader segfaults (the error's text holds the raw byte 0xff)
        cp = car.CarParams.new_message()
        cp.carFingerprint = "TOYOTA_"
        dat = bytearray(cp.to_bytes())
        dat[dat.index(b"TOYOTA_") + 7] = 0xFF  # the text's NUL
        assert forked(car_params_outcome, bytes(dat)) == "ValueError"

    @budget(800)
    @given(raw=CAR_PARAMS_BYTES)
    @example(raw=CAR_PARAMS)
    def test_canbridged_safety_mode_is_a_mode_or_none(self, raw):
        mode = safety_from_car_params(raw)
        if raw == CAR_PARAMS:
            assert mode == (2, 73)
        assert mode is None or (isinstance(mode[0], int) and 0 <= mode[1] <= 0xFFFFFFFF)

    def test_canbridged_on_a_carparams_message_with_a_bad_pointer_goes_silent(self):
        # it copied the message's carParams with as_builder(), which aborts the process on such a pointer
        m = messaging.new_message("carParams")
        m.carParams.carFingerprint = "A"
        dat = bytearray(m.to_bytes())
        text = [i for i in range(8, len(dat), 8) if struct.unpack_from("<II", dat, i)[1] == (2 << 3) | 2]
        assert len(text) == 1  # the one list pointer of 2 bytes: carFingerprint's
        struct.pack_into("<I", dat, text[0], (1000 << 2) | 1)
        log_from_bytes(bytes(dat))  # accepted: the root and union pointers are fine
        assert forked(canbridged_gate_after, bytes(dat)) == DASHCAM


class CarParamsSubMaster:
    """What Daemon.update_mode reads of its SubMaster: a carParams message that just came."""

    def __init__(self, dat: bytes):
        self.ev = log_from_bytes(dat)
        self.updated = {"carParams": True, "carState": False}

    def __getitem__(self, service: str):
        return getattr(self.ev, service)


def canbridged_gate_after(dat: bytes) -> str:
    d = Daemon.__new__(Daemon)  # without its sockets: update_mode needs only sm and the gate here
    d.gate, d.sm = CarGate(CanBridge(NullBackend())), CarParamsSubMaster(dat)
    d.update_mode(0.0)
    return d.gate.state


# --- 6. calibration ------------------------------------------------------------------------------------------

class TestCalibration:
    @budget(1000)
    @given(raw=st.one_of(st.none(), st.binary(max_size=80), st.builds(str.encode, calibration_json()),
                         st.builds(str.encode, JSON_TEXT),
                         st.builds(apply_edits, st.just(Calibrator((0.0, 0.01, -0.02), [(0.01, -0.02)] * 3, 3)
                                                        .to_bytes()), EDITS)))
    @example(raw=b'{"rpy": [0, 0, 0], "blocks": [], "valid_blocks": 1e999}')
    @example(raw=b'{"rpy": [0, 0, NaN], "blocks": [], "valid_blocks": 1}')
    @example(raw=b'{"rpy": "123", "blocks": ["12"], "valid_blocks": "7"}')
    def test_from_bytes_is_always_a_sane_calibrator(self, raw):
        cal = Calibrator.from_bytes(raw)
        assert isinstance(cal, Calibrator)
        assert len(cal.rpy) == 3 and all(isinstance(v, float) and math.isfinite(v) for v in cal.rpy)
        assert all(abs(v) <= MAX_ANGLE for v in cal.rpy)
        assert len(cal.blocks) <= MAX_BLOCKS and all(len(b) == 2 and all(math.isfinite(v) for v in b)
                                                     for b in cal.blocks)
        assert isinstance(cal.valid_blocks, int) and cal.valid_blocks >= 0
        try:
            check_calibration(raw)
        except (ValueError, TypeError):
            return
        # what Params hands calibrationd (it passed the key's check): everything calibrationd publishes works
        assert cal.status in ("uncalibrated", "calibrated", "invalid")
        assert 0 <= cal.percent <= 100 and all(math.isfinite(v) for v in cal.spread)


# --- 7. the UI websocket ---------------------------------------------------------------------------------------

PING = st.builds(lambda t, extra: json.dumps({"type": "ping", "t": t, **extra}),
                 st.one_of(st.floats(), st.integers(), st.booleans(), st.text(max_size=4), st.none(),
                           st.integers(2**1000, 2**1100)),
                 st.dictionaries(st.text(max_size=4), JSON_SCALAR, max_size=2))


class TestUiHub:
    @budget(1500)
    @given(msg=st.one_of(JSON_TEXT, PING, st.binary(max_size=60),
                         st.builds(lambda s: s.encode("utf-16"), PING)))
    @example(msg='{"type": "ping", "t": 1.5}')
    @example(msg='{"type": "ping", "t": NaN}')
    @example(msg=nested(100_000))
    def test_on_message_never_raises_and_answers_only_a_ping(self, msg):
        c = Client(Hub())
        ok = c.on_message(msg)
        assert ok is (c.pong is not None) and c.bad_input == (0 if ok else 1)
        if ok:
            t = json.loads(msg)["t"]
            assert json.loads(c.pong) == {"type": "pong", "t": t} and math.isfinite(t)
            assert c.wake.is_set()

    def test_ping_with_a_huge_integer_is_refused(self):
        # math.isfinite of an integer beyond float range raised OverflowError out of the handler
        c = Client(Hub())
        assert c.on_message('{"type": "ping", "t": 1' + "0" * 400 + "}") is False and c.bad_input == 1


# --- 8. other ways in -----------------------------------------------------------------------------------------

class NullBackend(Backend):
    def __init__(self):
        self.sent = []

    def recv(self):
        return []

    def send(self, frame):
        self.sent.append(frame)


def stamped(dat: bytes) -> bytes:
    ev = log_from_bytes(dat).as_builder()
    ev.logMonoTime = NOW_NS
    return ev.to_bytes()


class TestCanbridged:
    @budget(800)
    @given(dat=st.one_of(MESSAGE_BYTES, st.builds(apply_edits, st.just(stamped(SENDCAN)), EDITS)),
           mode=st.sampled_from([("silent", 0), ("toyota", 73)]))
    @example(dat=stamped(SENDCAN), mode=("toyota", 73))
    def test_handle_sendcan_counts_every_message_and_never_raises(self, dat, mode):
        b = CanBridge(NullBackend())
        b.set_mode(*mode)
        handle_sendcan(b, dat, NOW_NS)
        c = b.counts
        # exactly one fate: refused as malformed, dropped as stale, or every frame offered to the safety layer
        assert (c["sendcan_bad"] == 1) + (c["tx_stale"] > 0) + (c["tx"] > 0) <= 1
        assert c["tx_sent"] == len(b.backend.sent) <= c["tx"]
        if mode[0] == "silent":
            assert b.backend.sent == []

    def test_sendcan_socket_carrying_another_service_is_counted(self):
        # reading another service's Event as sendcan raised KjException: canbridged died
        b = CanBridge(NullBackend())
        handle_sendcan(b, stamped(EVENTS[0]), NOW_NS)
        assert b.counts["sendcan_bad"] == 1 and b.counts["tx"] == 0

    def test_sendcan_with_a_bad_frame_pointer_is_counted(self):
        # log_from_bytes checks only the root and union pointers: reading the frames raised KjException
        m = messaging.new_message("sendcan", 1)
        m.sendcan[0].dat, m.sendcan[0].address = b"\x01\x02", 0x2E4
        m.logMonoTime = NOW_NS
        dat = bytearray(m.to_bytes())
        struct.pack_into("<I", dat, 56, (1000 << 2) | 1)  # the frame's dat list pointer, 1000 words outside
        log_from_bytes(bytes(dat))  # accepted
        b = CanBridge(NullBackend())
        handle_sendcan(b, bytes(dat), NOW_NS)
        assert b.counts["sendcan_bad"] == 1 and b.counts["tx"] == 0

    @budget(1000)
    @given(msg=st.one_of(st.binary(max_size=80), st.builds(
        lambda frames, edits: apply_edits(pack_frames(frames), edits) if edits else pack_frames(frames),
        st.lists(st.tuples(st.integers(0, 2**32 - 1), st.binary(max_size=64), st.integers(0, 255)), max_size=5),
        st.none() | EDITS)))
    def test_sim_can_wire_unpacks_whole_frames_or_value_error(self, msg):
        try:
            frames = unpack_frames(msg)
        except ValueError:
            return
        assert pack_frames(frames) == msg  # nothing dropped, nothing invented
        assert all(0 <= a <= 0xFFFFFFFF and 0 <= b <= 255 and len(d) <= 255 for a, d, b in frames)
        assert sum(FRAME_HEADER.size + len(d) for _, d, _ in frames) == len(msg)


RECORD = st.builds(lambda rec: json.dumps(rec).encode(),
                   st.fixed_dictionaries({}, optional={"levelnum": JSON_SCALAR | st.integers(-2**40, 2**40),
                                                       "name": JSON_VALUE, "msg": st.text(max_size=10)}))


class TestLogmessaged:
    @budget(1000)
    @given(raw=st.one_of(st.binary(max_size=80), RECORD, st.builds(str.encode, JSON_TEXT)))
    @example(raw=b'{"levelnum": 20, "name": "card", "msg": "x"}')
    @example(raw=b'{"name": "a\\u0000b"}')
    def test_every_record_becomes_a_log_message(self, raw):
        msg = to_event(raw)
        ev = log_from_bytes(msg.to_bytes())  # it must also go out on the socket and be read back
        assert ev.which() == "logMessage" and ev.logMessage.msg == raw.decode("utf-8", errors="replace")

    # int(inf), a levelnum outside Int32 (capnp KjException) and JSON nested too deeply raised out of the daemon's loop
    @pytest.mark.parametrize("raw", [b'{"levelnum": 1e999}', b'{"levelnum": 4294967296}', b"[" * 100_000])
    def test_record_that_does_not_fit_is_kept_as_text(self, raw):
        msg = to_event(raw)
        assert msg.which() == "logMessage" and msg.logMessage.msg == raw.decode() and msg.logMessage.name == "?"


W, H = 8, 4  # a camerad configured this small keeps valid fuzzed frames small


GOOD_CAMERA = (10.0, 10.0, 4.0, 2.0, -0.1, 0.0, 0.0, 0.0, 0.0)  # fx, fy, cx, cy, k1, k2, p1, p2, k3 of an 8x4 camera


def sim_frame(w, h, fid, magic, version, camera, pixels):
    return [SIM_HEADER.pack(magic, version, w, h, 0, fid, 10, 20, *camera), pixels]


class TestCameradSim:
    @budget(800)
    @given(parts=st.one_of(
        st.lists(st.binary(max_size=64), min_size=1, max_size=3),  # ZMQ never hands over zero parts
        st.builds(sim_frame, st.sampled_from([W, 0, 7, 2**16 - 1]), st.sampled_from([H, 0, 3, 2**16 - 1]),
                  st.integers(0, 2**32 - 1), st.sampled_from([MAGIC, b"XXXX"]), st.sampled_from([VERSION, 0, 1]),
                  st.sampled_from([GOOD_CAMERA]) | st.tuples(*[st.floats(width=32)] * 9),
                  st.sampled_from([bytes(W * H * 3 // 2), b"", bytes(W * H)]) | st.binary(max_size=60)),
    ))
    def test_a_pushed_frame_is_served_whole_or_dropped_and_counted(self, parts):
        src = SimSource(W, H)
        frame = src._parse(parts)
        if frame is None:
            assert src.dropped == 1
            return
        assert src.dropped == 0 and frame.image.shape == (H * 3 // 2, W) and frame.image.dtype == np.uint8
        _, _, _, _, _, fid, sof, eof, *camera = SIM_HEADER.unpack(parts[0])
        assert frame.image.tobytes() == parts[1] and (frame.frame_id, frame.sof_ns, frame.eof_ns) == (fid, sof, eof)
        got = (frame.camera.fx, frame.camera.fy, frame.camera.cx, frame.camera.cy, *frame.camera.distortion)
        assert np.allclose(got, camera)  # a frame served comes with a camera that is one


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def npy_header(descr: str, shape: tuple) -> bytes:
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue() + bytes(16)


N_FRAMES = st.integers(0, 4)


@st.composite
def raw_can_column(draw, n: int, name: str):
    """One raw_can file: a plausible array of the frame count, the wrong shape or dtype, or damaged bytes."""
    good = {"t": st.floats(-1.0, 4000.0) | st.sampled_from([math.nan, math.inf, 1e300]),
            "src": st.integers(-1, 300), "address": st.integers(-1, 2**31 - 1),
            "data": st.binary(max_size=10)}[name]
    kind = draw(st.sampled_from(["good", "good", "good", "dtype", "shape", "bytes", "edited", "header"]))
    if kind in ("good", "edited"):
        values = draw(st.lists(good, min_size=n, max_size=n))
        arr = np.array(values, dtype="S8" if name == "data" else (float if name == "t" else np.int64))
        if name == "data":
            arr = np.array([v[:8] for v in values], dtype="S8") if values else np.zeros(0, "S8")
        raw = npy(arr)
        return apply_edits(raw, draw(EDITS)) if kind == "edited" else raw
    if kind == "dtype":
        return npy(np.zeros(n, dtype=draw(st.sampled_from(["U4", "S16", "bool", "complex128", "f2", "u8", "V3"]))))
    if kind == "shape":
        return npy(np.zeros(draw(st.sampled_from([(n, 2), (n, 1), (1, n, 1), ()])), dtype="S8" if name == "data"
                            else float))
    if kind == "header":  # claims a shape the file cannot hold (under the known MemoryError bug's sizes)
        return npy_header(draw(st.sampled_from(["<f8", "|S8", "<i8", "|O"])),
                          draw(st.sampled_from([(n,), (1000,), (2**20,), (-1,)])))
    return draw(st.binary(max_size=60))


class TestComma2k19Import:
    # float16 times: comparing them with MAX_TIME_S overflows the cast (a warning); the range check still holds
    @pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
    @budget(400)
    @given(data=st.data(), n=N_FRAMES)
    def test_load_frames_is_frames_or_source_error(self, work_dir, data, n):
        d = os.path.join(work_dir, "raw_can")
        os.makedirs(d, exist_ok=True)
        for name in ("t", "src", "address", "data"):
            write(os.path.join(d, name), data.draw(raw_can_column(n, name), label=name))
        try:
            t, frames, stats = comma2k19.load_frames(d)
        except comma2k19.SourceError:
            return
        assert len(t) == len(frames) == stats["frames"] > 0
        assert np.all(np.isfinite(t)) and np.all(np.diff(t) >= 0)
        assert all(0 <= a <= MAX_EXT_ADDRESS and 0 <= b <= 128 + MAX_BUS and len(dat) <= 8 for a, dat, b in frames)
        first = next(comma2k19.can_messages(t, frames))  # what import_route writes next
        assert first.which() == "can"

    # numpy raises EOFError for an empty file, MemoryError for a header claiming a huge shape, TokenError for a
    # damaged header: the import tool printed a traceback instead of its one-line refusal
    @pytest.mark.parametrize("content", [b"", npy_header("<f8", (2**40,)),
                                         npy_header("<f8", (0,)).replace(b"'shape'", b"'sh\0\0("),],
                             ids=["empty", "terabytes", "damaged-header"])
    def test_unreadable_npy_is_a_source_error(self, tmp_path, content):
        for name in ("t", "src", "address", "data"):
            write(str(tmp_path / name), npy(np.zeros(1)))
        write(str(tmp_path / "t"), content)
        with pytest.raises(comma2k19.SourceError):
            comma2k19.load_frames(str(tmp_path))

    @pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
    @budget(300)
    @given(data=st.data(), n=N_FRAMES)
    def test_replay_backend_opens_or_raises_backend_error(self, work_dir, data, n):
        # canbridged's replay:<raw_can folder> reads the same files: BackendError is its one refusal
        d = os.path.join(work_dir, "replay_raw_can")
        os.makedirs(d, exist_ok=True)
        for name in ("t", "src", "address", "data"):
            write(os.path.join(d, name), data.draw(raw_can_column(n, name), label=name))
        try:
            backend = open_backend(f"replay:{d}")
        except BackendError:
            return
        assert len(backend.frames) == len(backend.times) > 0

    def test_replay_backend_on_a_damaged_raw_can_folder(self, tmp_path):
        # np.load's ValueError came out where BackendError is promised: canbridged exited with a traceback
        for name in ("t", "src", "address", "data"):
            write(str(tmp_path / name), b"\x93NUMPY garbage")
        with pytest.raises(BackendError):
            open_backend(f"replay:{tmp_path}")


class TestRouteFolders:
    @budget(400)
    @given(raw=st.one_of(st.binary(max_size=60), st.builds(str.encode, JSON_TEXT)))
    @example(raw=b'{"restarts": "x"}')
    def test_route_json_is_a_dict_or_route_error(self, work_dir, raw):
        route = os.path.join(work_dir, "meta-route")
        os.makedirs(os.path.join(route, "0"), exist_ok=True)
        meta_path = write(os.path.join(route, "route.json"), raw)
        r = Route(route)
        try:
            meta = r.read_meta()
        except RouteError:
            meta = None
        assert meta is None or isinstance(meta, dict)
        assert r.meta() == (meta or {})
        # loggerd restarted within its run reopens the route and counts the restart in route.json
        w = RouteWriter(work_dir, {s: SERVICES[s] for s in ("carState",)}, 60.0, 0.0, name="meta-route")
        w.close()
        assert w.writing and w.write_errors == 0
        with open(meta_path, "rb") as f:
            rewritten = f.read() != raw
        if rewritten:  # not left as it was: a dict that counts the restart
            after = Route(route).read_meta()
            assert isinstance(after["restarts"], int) and after["restarts"] >= 1

    def test_route_meta_on_deep_json(self, tmp_path):
        # json.load's RecursionError must not come out of reading route.json
        os.makedirs(tmp_path / "0")
        write(str(tmp_path / "route.json"), b"[" * 100_000)
        assert Route(str(tmp_path)).meta() == {}

    def test_loggerd_restart_on_deep_route_json(self, tmp_path):
        # RecursionError came out of RouteWriter's constructor: a restarted loggerd died
        os.makedirs(tmp_path / "r")
        write(str(tmp_path / "r" / "route.json"), b"[" * 100_000)
        w = RouteWriter(str(tmp_path), {"carState": SERVICES["carState"]}, 60.0, 0.0, name="r")
        w.close()
        assert w.writing and w.write_errors == 0

    @budget(300)
    @given(names=st.lists(st.text(st.sampled_from("0123456789a._-") | st.characters(categories=["Nd", "No"]),
                                  min_size=1, max_size=3), max_size=4))
    @example(names=["0", "12"])
    def test_segment_folders_of_any_name(self, work_dir, names):
        route = os.path.join(work_dir, f"names-{time.monotonic_ns()}")
        os.makedirs(route)
        for name in names:
            if name not in (".", ".."):
                os.makedirs(os.path.join(route, name), exist_ok=True)
        r = Route(route)
        assert all(isinstance(s.number, int) and s.number >= 0 for s in r.segments)
        try:
            list(LogReader(route))
        except LogError:
            pass

    def test_route_with_a_superscript_folder(self, tmp_path):
        # "²".isdigit() holds and int("²") raises: Route (and LogReader) raised a bare ValueError
        os.makedirs(tmp_path / "0")
        os.makedirs(tmp_path / "\u00b2")
        os.makedirs(tmp_path / "\u0663")  # ARABIC-INDIC DIGIT THREE: int() reads 3, yet it is no segment folder
        assert [s.number for s in Route(str(tmp_path)).segments] == [0]
        LogReader(str(tmp_path))
