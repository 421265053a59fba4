"""Test helpers: the real RAV4 minute, a synthetic RAV4 built with opendbc's CANPacker, recordings on disk,
and daemons started as real processes."""

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from opendbc.can import CANPacker
from opendbc.car.can_definitions import CanData

from hardware.can_backends import load_comma2k19
from selfdrive.car.car_logic import CarLogic
from selfdrive.car.car_specific import CarSetup, build_plan
from selfdrive.car.fingerprinting import Fingerprinter, FingerprintResult, identify_by_query

REPO = Path(__file__).resolve().parents[3]
DATA = REPO.parent / "shared" / "data" / "comma2k19-rav4"
RAW = DATA / "processed_log" / "CAN" / "raw_can"
SKIP_REASON = f"real data not present at {DATA} (the shared data folder beside the checkout)"
PT_DBC = "toyota_new_mc_pt_generated"  # TOYOTA_RAV4 in opendbc
RADAR_DBC = "toyota_adas"
REPLAY_DBCS = f"dbc0={PT_DBC}&dbc1={RADAR_DBC}"

Timed = tuple[float, int, int, bytes]  # (t s, bus, address, data), as can_backends loads recordings


def have_data() -> bool:
    return (RAW / "t").is_file()


def load_npy(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        return np.load(f)


def real_frames() -> list[Timed]:
    """The car's frames (buses 0 and 1) of the real minute, lengths restored from the DBCs."""
    return [f for f in load_comma2k19(str(RAW), {0: PT_DBC, 1: RADAR_DBC}) if f[1] < 128]


def batches(frames: list[Timed], dt: float = 0.01) -> list[tuple[int, list[CanData]]]:
    """10 ms packets as card gets them from canbridged: (end of the window in ns, frames in it)."""
    t = np.array([f[0] for f in frames])
    ends = t[0] + dt * np.arange(1, int((t[-1] - t[0]) / dt) + 2)
    cut = np.searchsorted(t, ends)
    out, prev = [], 0
    for end, c in zip(ends, cut, strict=True):
        out.append((int(round(end * 1e9)), [CanData(a, d, b) for _, b, a, d in frames[prev:c]]))
        prev = c
    return out


def car_logic_for(packets: list[tuple[int, list[CanData]]], platform: str = "TOYOTA_RAV4",
                  setup: CarSetup | None = None) -> tuple[CarLogic, int]:
    """A CarLogic set up the way card does it (fingerprint window first); returns it and the packets used."""
    fp = Fingerprinter(platform)
    used = 0
    while not fp.done and used < len(packets):
        fp.add(packets[used][1])
        used += 1
    return CarLogic(build_plan(fp.result(), setup or CarSetup())), used


class SyntheticRav4:
    """A TOYOTA_RAV4 stream from opendbc's packer: every message card's car state reads, at 100 Hz,
    with valid checksums and counters. `cruise`, `brake`, `dsu` shape the car."""

    def __init__(self, dsu: bool = False, camera_bus: bool = False):
        self.packer = CANPacker(PT_DBC)
        self.dsu = dsu
        self.camera_bus = camera_bus
        setup = CarSetup(dsu="present" if dsu else "absent", buses=frozenset({0, 2}))
        logic, _ = car_logic_for([(0, [])], setup=setup)
        logic.update([(0, [])])  # opendbc adds a message to a parser when the car state first reads it
        parsers = logic.CI.can_parsers.values()
        self.messages = sorted((p.bus, m.name) for p in parsers for m in p.message_states.values())

    def values(self, name: str, cruise: bool, brake: bool, speed_kph: float) -> dict[str, float]:
        v = {
            "WHEEL_SPEEDS": {f"WHEEL_SPEED_{w}": speed_kph for w in ("FL", "FR", "RL", "RR")},
            "PCM_CRUISE": {"CRUISE_ACTIVE": int(cruise), "GAS_RELEASED": 1, "CRUISE_STATE": 8 if cruise else 0},
            "PCM_CRUISE_2": {"MAIN_ON": 1, "SET_SPEED": 100},
            "BRAKE_MODULE": {"BRAKE_PRESSED": int(brake)},
            "EPS_STATUS": {"LKA_STATE": 5},
            "GEAR_PACKET": {"GEAR": 0},
        }
        return v.get(name, {})

    def frames(self, t: float, cruise: bool = True, brake: bool = False, speed_kph: float = 50.0) -> list[Timed]:
        out = []
        for bus, name in self.messages:
            if bus == 2 and not self.camera_bus:
                continue
            if name == "PRE_COLLISION" and not self.dsu:
                continue
            addr, dat, _ = self.packer.make_can_msg(name, bus, self.values(name, cruise, brake, speed_kph))
            out.append((t, bus, addr, dat))
        return out

    def stream(self, seconds: float, cruise: Callable[[float], bool] = lambda t: True,
               brake: Callable[[float], bool] = lambda t: False, t0: float = 0.0) -> list[Timed]:
        out = []
        for k in range(int(seconds * 100)):
            t = t0 + k * 0.01
            out.extend(self.frames(t, cruise(t), brake(t)))
        return out


DT = 0.01  # s of a bus step


class VirtualBus:
    """The car on a bus with a virtual clock: each message the tester waits for is one 10 ms step of the car."""

    def __init__(self, frames_of_step):
        self.frames_of_step = frames_of_step
        self.t = 1000.0
        self.k = 0
        self.sent: list[CanData] = []
        self.on_send = lambda m: None

    def monotonic(self) -> float:
        return self.t

    def recv(self, wait_for_one: bool = False) -> list[list[CanData]]:
        if not wait_for_one:
            return []  # nothing is waiting: the car's frames come one step at a time
        self.t += DT
        self.k += 1
        return [[CanData(a, d, b) for a, d, b in self.frames_of_step(self.k)]]

    def send(self, msgs: list[CanData]) -> None:
        for m in msgs:
            self.sent.append(m)
            self.on_send(m)

    def identify(self, monkeypatch) -> FingerprintResult:
        """opendbc's identification over this bus, on its virtual clock (pytest's monkeypatch undoes it)."""
        monkeypatch.setattr(time, "monotonic", self.monotonic)
        return identify_by_query(self.recv, self.send)


def write_recording(folder: Path, frames: list[Timed]) -> Path:
    """Frames in the comma2k19 raw_can layout (what the replay backend reads; S8 payloads, so lengths
    come back through dbc=...)."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "t": np.array([f[0] for f in frames], dtype=np.float64),
        "src": np.array([f[1] for f in frames], dtype=np.int64),
        "address": np.array([f[2] for f in frames], dtype=np.int64),
        "data": np.array([f[3] for f in frames], dtype="S8"),
    }
    for name, arr in arrays.items():
        with open(folder / name, "wb") as f:
            np.save(f, arr)
    return folder


def start(module: str, *args: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A daemon as a real process; stderr (its log lines) goes to `log`. `env` adds to this environment."""
    with open(log, "wb") as err:
        return subprocess.Popen([sys.executable, "-m", module, *args], stdout=subprocess.DEVNULL, stderr=err,
                                env={**os.environ, **(env or {})})


def open_gate(gate: Path, lead_s: float = 0.3) -> float:
    """Lets gated replays start `lead_s` from now (atomically: they never read half a file); returns the start."""
    t0 = time.monotonic() + lead_s
    tmp = gate.with_suffix(".tmp")
    tmp.write_text(repr(t0))
    os.replace(tmp, gate)
    return t0


def wait_for_line(log: Path, text: str, timeout: float = 20.0) -> None:
    """Waits until a daemon's log has a line containing `text` (how tests know it got that far)."""
    deadline = time.monotonic() + timeout
    while text not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, f"{text!r} not in {log} after {timeout} s:\n{log.read_text()[-2000:]}"
        time.sleep(0.02)


def last_status(log: Path) -> dict:
    """canbridged's last status line (it logs one at exit)."""
    lines = [ln for ln in log.read_text().splitlines() if "canbridged status " in ln]
    assert lines, f"no status in {log}:\n{log.read_text()[-2000:]}"
    return json.loads(lines[-1].split("canbridged status ", 1)[1])["status"]


def stop(*procs: subprocess.Popen) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + 5
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
