import logging
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from common import params_keys
from common.params import Params
from common.params_keys import KEYS, ParamFlag, ParamKey, ParamType
from common.paths import params_dir
from common.swaglog import cloudlog
from common.tests.params_writer import seq_of


@pytest.fixture
def warnings_log():
    """Warnings cloudlog emitted during the test (cloudlog does not propagate to pytest's caplog)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    cloudlog.addHandler(handler)
    yield records
    cloudlog.removeHandler(handler)


CAL = b'{"rpy": [0.0, 0.01, -0.02], "blocks": [[0.01, -0.02]], "valid_blocks": 1}'

# keys of every type and lifetime the table allows, declared for these tests only (the real table holds only keys
# that something reads: test_every_key_is_used_outside_the_tests)
TEST_KEYS = (
    ParamKey("TestCount", ParamType.INT, ParamFlag.PERSISTENT, 0),
    ParamKey("TestHeight", ParamType.FLOAT, ParamFlag.PERSISTENT, 1.22),
    ParamKey("TestJson", ParamType.JSON, ParamFlag.PERSISTENT),
    ParamKey("TestId", ParamType.STR, ParamFlag.PERSISTENT),
)


@pytest.fixture(autouse=True)
def test_keys(monkeypatch):
    for k in TEST_KEYS:
        monkeypatch.setitem(KEYS, k.name, k)


def temp_files(root: str) -> list[str]:
    return [n for n in os.listdir(root) if n.endswith(".tmp")]


def spawn_writer(root: str, key: str, first_seq: int) -> subprocess.Popen:
    """A writer process (common/tests/params_writer.py), returned once its first value is on disk."""
    proc = subprocess.Popen([sys.executable, "-m", "common.tests.params_writer", root, key, str(first_seq)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready", "writer process did not start"
    return proc


class TestTypedValues:
    def setup_method(self):
        self.params = Params()

    @pytest.mark.parametrize("key,value", [
        ("ManagerMode", "TOYOTA_RAV4 — ünïcode"),
        ("ManagerMode", ""),
        ("CarParams", bytes(range(256)) * 3 + b"\n\x00"),
        ("CarParams", b""),
        ("LongitudinalPersonality", 2),
        ("TestCount", -(10 ** 30)),
        ("TestHeight", 0.1 + 0.2),  # repr round-trips floats exactly
        ("ExperimentalMode", True),
        ("ExperimentalMode", False),
        ("TestJson", {"steerRatio": 15.3, "offsets": [0.0, -1e-9], "valid": True, "name": None}),
        ("TestJson", {"list": [1, "two"]}),
        ("CalibrationParams", CAL),
    ])
    def test_round_trip(self, key, value):
        self.params.put(key, value)
        got = self.params.get(key)
        assert got == value and type(got) is type(value)
        assert Params().get(key) == value  # a fresh instance (another process) reads the same

    def test_bytes_like_stored_as_bytes_and_int_as_float(self):
        self.params.put("CarParams", bytearray(b"abc"))
        assert self.params.get("CarParams") == b"abc"
        self.params.put("TestHeight", 2)
        assert self.params.get("TestHeight") == 2.0 and isinstance(self.params.get("TestHeight"), float)

    @pytest.mark.parametrize("key,default", [
        ("LongitudinalPersonality", 1), ("ExperimentalMode", False), ("TestCount", 0), ("ManagerMode", None),
        ("CarParams", None), ("TestHeight", 1.22), ("IsEngaged", False),
    ])
    def test_missing_key_gives_declared_default(self, key, default, warnings_log):
        assert self.params.get(key) == default
        assert KEYS[key].default == default
        assert warnings_log == []  # unset is a normal state, not worth a warning

    def test_overwrite_and_remove(self):
        self.params.put("TestCount", 1)
        self.params.put("TestCount", 2)
        assert self.params.get("TestCount") == 2
        self.params.remove("TestCount")
        assert self.params.get("TestCount") == 0
        self.params.remove("TestCount")  # removing an unset key is fine
        assert temp_files(self.params.root) == []

    def test_default_root_is_params_dir(self):
        self.params.put("TestId", "abc123")
        assert self.params.root == params_dir()
        with open(os.path.join(params_dir(), "TestId"), "rb") as f:
            assert f.read() == b"abc123"

    def test_explicit_root(self, tmp_path):
        p = Params(str(tmp_path / "elsewhere"))
        p.put("ManagerMode", "x")
        assert p.get("ManagerMode") == "x"
        assert self.params.get("ManagerMode") is None


class TestBadInput:
    def setup_method(self):
        self.params = Params()

    @pytest.mark.parametrize("call", [
        lambda p: p.get("NoSuchKey"), lambda p: p.put("NoSuchKey", "x"), lambda p: p.remove("NoSuchKey"),
        lambda p: p.get("carname"), lambda p: p.get(["ManagerMode"]),
    ])
    def test_undeclared_key(self, call):
        with pytest.raises(KeyError, match="params_keys.py"):
            call(self.params)
        assert os.listdir(self.params.root) == []

    @pytest.mark.parametrize("key,value,exc", [
        ("ManagerMode", b"bytes", TypeError),
        ("ManagerMode", None, TypeError),
        ("CarParams", "text", TypeError),
        ("LongitudinalPersonality", True, TypeError),  # bool is an int in Python, not here
        ("LongitudinalPersonality", 1.5, TypeError),
        ("LongitudinalPersonality", "1", TypeError),
        ("ExperimentalMode", 1, TypeError),
        ("TestHeight", "1.2", TypeError),
        ("TestHeight", float("inf"), ValueError),
        ("TestJson", {"a": object()}, TypeError),
        ("TestJson", {"a": float("nan")}, ValueError),
    ])
    def test_put_wrong_type_raises_and_keeps_old_value(self, key, value, exc):
        old = KEYS[key].default if KEYS[key].default is not None else {
            ParamType.STR: "old", ParamType.BYTES: b"old", ParamType.JSON: {"old": 1}}[KEYS[key].type]
        self.params.put(key, old)
        with pytest.raises(exc, match=key):
            self.params.put(key, value)
        assert self.params.get(key) == old
        assert temp_files(self.params.root) == []

    @pytest.mark.parametrize("key,raw", [
        ("LongitudinalPersonality", b"abc"),
        ("TestCount", b""),
        ("ExperimentalMode", b"yes"),
        ("ExperimentalMode", b""),
        ("TestHeight", b"nan"),
        ("TestHeight", b"1.2.3"),
        ("ManagerMode", b"\xff\xfe not utf-8"),
        ("TestJson", b'{"steerRatio": '),
        ("TestJson", b"[" * 100_000),  # deep nesting must not blow the stack
    ])
    def test_corrupt_file_gives_default_and_warning(self, key, raw, warnings_log):
        with open(os.path.join(self.params.root, key), "wb") as f:
            f.write(raw)
        assert self.params.get(key) == KEYS[key].default
        assert len(warnings_log) == 1
        assert warnings_log[0].key == key and "corrupt" in warnings_log[0].getMessage()

    def test_unreadable_file_gives_default_and_warning(self, warnings_log):
        os.mkdir(os.path.join(self.params.root, "LongitudinalPersonality"))
        assert self.params.get("LongitudinalPersonality") == 1
        assert [r.key for r in warnings_log] == ["LongitudinalPersonality"]

    def test_hand_edited_values_with_newline_still_parse(self):
        for key, raw, want in [("TestCount", b"7\n", 7), ("ExperimentalMode", b"1\n", True)]:
            with open(os.path.join(self.params.root, key), "wb") as f:
                f.write(raw)
            assert self.params.get(key) == want


class TestClearAll:
    def setup_method(self):
        self.params = Params()
        self.values = {"CarParams": b"cp", "CalibrationParams": CAL, "IsEngaged": True, "TestId": "dev",
                       "ManagerMode": "sim"}
        for k, v in self.values.items():
            self.params.put(k, v)

    def set_keys(self) -> set[str]:
        return {k for k in self.values if self.params.get(k) != KEYS[k].default}

    def test_manager_start_keeps_persistent(self):
        self.params.clear_all(ParamFlag.CLEAR_ON_MANAGER_START)
        assert self.set_keys() == {"CalibrationParams", "TestId"}

    def test_everything(self):
        self.params.clear_all()
        assert self.set_keys() == set()
        assert os.listdir(self.params.root) == []


class TestKeyTable:
    def test_every_key_has_one_lifetime_and_a_fitting_default(self):
        for k in KEYS.values():
            assert (ParamFlag.PERSISTENT in k.flags) != (ParamFlag.CLEAR_ON_MANAGER_START in k.flags), k.name
            if k.default is not None:
                assert params_keys.check_value(k, k.default) == k.default

    def test_every_key_is_used_outside_the_tests(self):
        """A key is kept only for a reader or a writer in the code itself: a value nobody uses is dead weight that a
        reader would one day mistake for a live one."""
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        used: set[str] = set()
        names = {k.name for k in params_keys._KEYS}
        for top in ("selfdrive", "hardware", "common", "cereal", "tools"):
            for dirpath, dirnames, files in os.walk(os.path.join(root, top)):
                dirnames[:] = [d for d in dirnames if d != "tests"]
                for f in files:
                    if f.endswith(".py") and not f.startswith("test_") and f != "params_keys.py":
                        with open(os.path.join(dirpath, f), encoding="utf-8") as fh:
                            text = fh.read()
                        used |= {n for n in names if f'"{n}"' in text}
        assert names - used == set(), "params keys nothing outside the tests reads or writes"

    def test_carparams_cleared_on_manager_start(self):
        assert KEYS["CarParams"].type is ParamType.BYTES
        assert ParamFlag.CLEAR_ON_MANAGER_START in KEYS["CarParams"].flags

    @pytest.mark.parametrize("bad", [
        ParamKey("X", ParamType.INT, ParamFlag(0)),
        ParamKey("X", ParamType.INT, ParamFlag.PERSISTENT | ParamFlag.CLEAR_ON_MANAGER_START),
        ParamKey("X", ParamType.INT, ParamFlag.PERSISTENT, default="1"),
        ParamKey("ManagerMode", ParamType.STR, ParamFlag.PERSISTENT),  # declared twice
    ])
    def test_bad_rows_rejected(self, bad, monkeypatch):
        monkeypatch.setattr(params_keys, "_KEYS", params_keys._KEYS + (bad,))
        monkeypatch.setattr(params_keys, "KEYS", {k.name: k for k in params_keys._KEYS})
        with pytest.raises((ValueError, TypeError)):
            params_keys._check_table()

    def test_imports_first_in_a_fresh_process(self):
        # cloudlog's module once imported cereal.messaging, which imports cloudlog: a circular import
        subprocess.run([sys.executable, "-c", "import common.params"], check=True)


WAITER = """
import sys
from common.params import Params
print("waiting", flush=True)
print(repr(Params().get(sys.argv[1], block=True, timeout=None if sys.argv[2] == "None" else float(sys.argv[2]))))
"""


class TestBlockingGet:
    @pytest.mark.timeout(60)
    def test_returns_once_another_process_writes(self):
        # the waiter blocks without a timeout; this process writes only after the waiter is running
        waiter = subprocess.Popen([sys.executable, "-c", WAITER, "ManagerMode", "None"], stdout=subprocess.PIPE,
                                  text=True)
        assert waiter.stdout.readline().strip() == "waiting"
        time.sleep(0.3)
        assert waiter.poll() is None, "get(block=True) returned before the key existed"
        Params().put("ManagerMode", "TOYOTA_PRIUS")
        out, _ = waiter.communicate(timeout=30)
        assert out.strip() == "'TOYOTA_PRIUS'" and waiter.returncode == 0

    @pytest.mark.timeout(60)
    def test_in_process_wait_for_another_process(self):
        writer = subprocess.Popen([sys.executable, "-c", "import time; from common.params import Params; "
                                   "time.sleep(0.3); Params().put('LongitudinalPersonality', 2)"])
        assert Params().get("LongitudinalPersonality", block=True, timeout=30) == 2
        assert writer.wait(timeout=30) == 0

    def test_timeout_returns_default_and_warns(self, warnings_log):
        params = Params()
        assert params.get("LongitudinalPersonality", block=True, timeout=0.1) == 1
        assert params.get("ManagerMode", block=True, timeout=0) is None
        assert [r.key for r in warnings_log] == ["LongitudinalPersonality", "ManagerMode"]

    def test_existing_key_returns_at_once(self):
        params = Params()
        params.put("ManagerMode", "x")
        assert params.get("ManagerMode", block=True, timeout=0) == "x"


class TestAtomicity:
    def test_survives_kill_in_the_middle_of_writes(self):
        """A writer SIGKILLed at random moments always leaves either the old or the new value, whole."""
        root = Params().root
        rng = random.Random(1234)
        last_seq, killed_after_progress = -1, 0
        for i in range(20):
            writer = spawn_writer(root, "CarParams", first_seq=i * 1_000_000)
            # read while it writes: a reader must never see a partial value either
            for _ in range(rng.randint(0, 4)):
                assert seq_of(Params(root).get("CarParams")) is not None
            time.sleep(rng.uniform(0, 0.03))
            writer.send_signal(signal.SIGKILL)
            writer.wait()
            seq = seq_of(Params(root).get("CarParams"))
            assert seq is not None, f"torn or partial value after kill {i}"
            assert seq >= last_seq and seq >= i * 1_000_000  # the newest complete write, never an older one
            killed_after_progress += seq > i * 1_000_000
            last_seq = seq
        assert killed_after_progress >= 5, "the writer was always killed before its second write: test proves little"
        # killed writers may leave temp files; reads ignore them and a new Params removes them
        assert seq_of(Params(root).get("CarParams")) == last_seq
        assert temp_files(root) == []

    def test_concurrent_writers_never_tear(self):
        root = Params().root
        writers = [spawn_writer(root, "CarParams", first_seq=s) for s in (0, 1_000_000)]
        try:
            seen, reads = set(), 0
            # at least 150 reads, and on until both writers have landed values: on a loaded machine the second
            # writer may still be starting up after 150 reads (bounded, so a writer that never lands fails below)
            deadline = time.monotonic() + 30.0
            while reads < 150 or (seen != {0, 1} and time.monotonic() < deadline):
                seq = seq_of(Params(root).get("CarParams"))
                assert seq is not None, "read a torn value"
                seen.add(seq // 1_000_000)
                reads += 1
            assert [w.poll() for w in writers] == [None, None], "a writer's put raised while the other wrote"
        finally:
            for w in writers:
                w.kill()
                w.wait()
        assert seen == {0, 1}, "both writers should have landed values while we read"

    def test_stale_temp_files_of_dead_writers_removed_live_ones_kept(self):
        root = Params().root
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            names = {f".CarParams.{dead.pid}.abc123.tmp": False, f".CarParams.{live.pid}.def456.tmp": True,
                     ".CarParams.notapid.x.tmp": True}
            for name in names:
                with open(os.path.join(root, name), "wb") as f:
                    f.write(b"partial")
            assert Params(root).get("CarParams") is None  # temp files are never read as values
            assert {n: os.path.exists(os.path.join(root, n)) for n in names} == names
        finally:
            live.kill()
            live.wait()


class TestStorageFaults:
    """What a full disk, a huge file or a value no writer wrote does to a reader and a loop's writer."""

    def test_huge_file_is_corrupt_and_never_read_whole(self, warnings_log):
        params = Params()
        path = os.path.join(params.root, "LongitudinalPersonality")
        with open(path, "wb") as f:
            f.truncate(200 * 1024 * 1024)  # sparse: 200 MB that costs nothing to make
        for _ in range(3):  # a loop re-reading it gets the default at once, and one warning in all
            assert params.get("LongitudinalPersonality") == 1
        assert [r.key for r in warnings_log] == ["LongitudinalPersonality"]
        assert "at most" in params.corrupt["LongitudinalPersonality"]

    @pytest.mark.parametrize("raw", [
        b'{"rpy": [0, 0, 0], "blocks": [], "valid_blocks": 1e999}',   # json reads 1e999 as inf
        b'{"rpy": [0, NaN, 0], "blocks": [], "valid_blocks": 1}',
        b'{"rpy": [0, 0], "blocks": [], "valid_blocks": 1}',
        b'{"rpy": [0, 0, 0], "blocks": [[1, 2, 3]], "valid_blocks": 1}',
        b'{"rpy": [0, 0, 0], "blocks": [], "valid_blocks": -1}',
        b"[1, 2, 3]",
        b"\x00" * 40,
    ])
    def test_calibration_record_of_the_wrong_shape_is_corrupt(self, raw, warnings_log):
        params = Params()
        with open(os.path.join(params.root, "CalibrationParams"), "wb") as f:
            f.write(raw)
        assert params.get("CalibrationParams") is None
        assert [r.key for r in warnings_log] == ["CalibrationParams"]

    def test_put_refuses_what_a_reader_would_refuse(self):
        with pytest.raises(ValueError, match="LongitudinalPersonality"):
            Params().put("LongitudinalPersonality", 7)
        with pytest.raises(ValueError, match="valid_blocks"):
            Params().put("CalibrationParams", b'{"rpy": [0, 0, 0], "blocks": [], "valid_blocks": "x"}')

    def test_reset_corrupt_moves_the_file_aside_and_names_the_key(self):
        params = Params()
        params.put("CalibrationParams", CAL)
        params.put("TestId", "dev")
        with open(os.path.join(params.root, "LongitudinalPersonality"), "wb") as f:
            f.write(b"9")
        with open(os.path.join(params.root, "TestJson"), "wb") as f:
            f.write(b"{")
        reset = params.reset_corrupt()
        assert set(reset) == {"LongitudinalPersonality", "TestJson"}
        assert params.get("LongitudinalPersonality") == 1 and params.get("CalibrationParams") == CAL
        with open(os.path.join(params.root, ".TestJson.corrupt"), "rb") as f:
            assert f.read() == b"{"  # kept for a look, not lost
        assert params.reset_corrupt() == {}

    def test_put_nonblocking_failure_is_counted_not_raised_and_clears_on_success(self, monkeypatch):
        import errno
        params = Params()
        real_put = params.put
        full = [True]

        def put(key, value):
            if full[0]:
                raise OSError(errno.ENOSPC, "No space left on device")
            real_put(key, value)
        monkeypatch.setattr(params, "put", put)
        params.put_nonblocking("IsEngaged", True)
        assert params.wait_written(10)
        assert params.failing == {"IsEngaged": "No space left on device"} and params.write_failures == 1
        assert params.get("IsEngaged") is False
        full[0] = False
        params.put_nonblocking("IsEngaged", True)
        assert params.wait_written(10)
        assert params.failing == {} and params.get("IsEngaged") is True
        with pytest.raises(TypeError):
            params.put_nonblocking("IsEngaged", "yes")  # a caller's bug still shows at once

    def test_put_nonblocking_newest_value_wins(self):
        params = Params()
        for i in range(200):
            params.put_nonblocking("TestCount", i)
        assert params.wait_written(10)
        assert params.get("TestCount") == 199

    def test_prefixes_keep_their_params_apart(self, monkeypatch):
        Params().put("ManagerMode", "LEXUS_CTH")
        first = os.environ["ROADPILOT_PREFIX"]
        monkeypatch.setenv("ROADPILOT_PREFIX", "second")
        other = Params()
        assert other.root == os.path.join(os.environ["ROADPILOT_DATA"], "params-second")
        assert other.get("ManagerMode") is None
        other.put("ManagerMode", "TOYOTA_RAV4")
        monkeypatch.setenv("ROADPILOT_PREFIX", first)
        assert Params().get("ManagerMode") == "LEXUS_CTH"
