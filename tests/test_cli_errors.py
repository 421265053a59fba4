"""Every route tool refuses bad input the same way: exactly one line on stderr, exit status 2, no traceback, and
nothing left behind (no route folder, no output file). Each row runs the real command as a subprocess, with its
own ROADPILOT_DATA and ROADPILOT_PREFIX under the test's tmp folder."""

import os
import subprocess
import sys
import uuid

import numpy as np
import pytest

from cereal import messaging
from tools.lib.make_route import write_route

PY = [sys.executable, "-m"]
ROADPILOT = [*PY, "tools.cli"]
REPLAY = [*PY, "tools.replay.replay"]
RERUN = [*PY, "tools.replay.rerun"]
PLOT = [*PY, "tools.plot.plot"]
RENDER = [*PY, "tools.render.render"]
LOGREADER = [*PY, "selfdrive.loggerd.logreader"]
IMPORT = [*PY, "tools.importers.comma2k19"]

# (id, command, arguments ({name} is a path from `inputs`), what the one line says)
ROWS = [
    ("replay --start nan", REPLAY, ["{route}", "--start", "nan"], "not a finite number: 'nan'"),
    ("replay --start inf", REPLAY, ["{route}", "--start", "inf"], "not a finite number: 'inf'"),
    ("roadpilot replay --start nan", ROADPILOT, ["replay", "{route}", "--start", "nan"], "not a finite number"),
    ("plot -o in a missing folder", PLOT, ["{route}", "carState.vEgo", "-o", "{out}/missing/p.png"], "no such folder"),
    ("plot -o with a wrong extension", PLOT, ["{route}", "carState.vEgo", "-o", "{out}/p.jpg"], "must end in .png"),
    ("plot -o without an extension", PLOT, ["{route}", "carState.vEgo", "-o", "{out}/p"], "must end in .png"),
    ("plot -o an existing folder", PLOT, ["{route}", "carState.vEgo", "-o", "{out}"], "is a folder"),
    ("plot a field without messages", PLOT, ["{route}", "modelV2.frameId", "-o", "{out}/p.png"], "no messages in"),
    ("render -o in a missing folder", RENDER, ["{route}", "-o", "{out}/missing/r.mp4"], "no such folder"),
    ("render -o with an unknown extension", RENDER, ["{route}", "-o", "{out}/r.xyz"], "must end in .mp4"),
    ("render --start nan", RENDER, ["{route}", "-o", "{out}/r.mp4", "--start", "nan"], "not a finite number"),
    ("logreader without arguments", LOGREADER, [], "required: source"),
    ("logreader with a bad log type", LOGREADER, ["{route}", "blog"], "invalid choice"),
    ("logreader on a missing file", LOGREADER, ["{out}/missing.zst"], "no route"),
    ("logreader on a text file", LOGREADER, ["{notes}"], "not a roadpilot log"),
    ("logreader on a damaged log it cannot read", LOGREADER, ["{damaged}"], "not a roadpilot log"),
    ("comma2k19 --segment-seconds 1e-12", IMPORT, ["{can}", "--segment-seconds", "1e-12"], "segment seconds"),
    ("comma2k19 --segment-seconds inf", IMPORT, ["{can}", "--segment-seconds", "inf"], "not a finite number"),
    ("comma2k19 bus out of range", IMPORT, ["{can_bus}"], "bus numbers must be 0 to 255"),
    ("comma2k19 address out of range", IMPORT, ["{can_address}"], "CAN addresses must be"),
    ("comma2k19 2-D times", IMPORT, ["{can_2d}"], "got shape (10, 3)"),
    ("comma2k19 a timestamp 1e7 s away", IMPORT, ["{can_far}"], "times span"),
    ("rerun with a garbage route.json", RERUN, ["{garbage}"], "route.json: unreadable"),
    ("rerun with a deeply nested route.json", RERUN, ["{nested}"], "RecursionError"),
]


def car_states(n: int = 20) -> list:
    out = []
    for i in range(n):
        msg = messaging.new_message("carState")
        msg.logMonoTime, msg.carState.vEgo = 1_000_000_000 + i * 10_000_000, float(i)
        out.append(msg)
    return out


def can_source(folder, **replace) -> str:
    """A comma2k19 raw_can folder of 10 frames (NumPy arrays without the .npy extension), `replace` swapped in."""
    os.makedirs(folder)
    arrays = {"t": 100.0 + 0.01 * np.arange(10), "src": np.zeros(10, int), "address": np.full(10, 0xB4),
              "data": np.array([b"\x01\x02"] * 10, dtype="S8"), **replace}
    for name, arr in arrays.items():
        with open(os.path.join(folder, name), "wb") as f:
            np.save(f, arr)
    return str(folder)


def inputs(tmp_path, routes: str) -> dict[str, str]:
    out = tmp_path / "out"
    out.mkdir()
    paths = {"out": str(out), "route": write_route(car_states(), "r", root=routes)}
    notes = tmp_path / "notes.txt"
    notes.write_text("not a log\n" * 50)
    damaged = os.path.join(paths["route"], "0", "rlog.zst")
    with open(damaged, "rb") as f:
        data = bytearray(f.read())
    data[0] ^= 0xFF  # the route's one frame: nothing left to read
    (tmp_path / "damaged.zst").write_bytes(bytes(data))
    paths.update(notes=str(notes), damaged=str(tmp_path / "damaged.zst"), can=can_source(tmp_path / "can"),
                 can_bus=can_source(tmp_path / "can_bus", src=np.array([0] * 9 + [300])),
                 can_address=can_source(tmp_path / "can_address", address=np.array([0xB4] * 9 + [1 << 40])),
                 can_2d=can_source(tmp_path / "can_2d", t=np.zeros((10, 3))),
                 can_far=can_source(tmp_path / "can_far", t=100.0 + np.r_[np.arange(9) * 0.01, 1e7]))
    for name, text in (("garbage", b"\x00\xff{not json at all"), ("nested", b"[" * 100_000)):
        paths[name] = write_route(car_states(), name, root=routes)
        with open(os.path.join(paths[name], "route.json"), "wb") as f:
            f.write(text)
    return paths


def listing(folder: str) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, files in os.walk(folder) for f in files + [""])


@pytest.mark.parametrize("command, args, says", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input_is_one_line_and_status_2(tmp_path, command, args, says):
    data = tmp_path / "data"
    routes = str(data / "routes")
    paths = inputs(tmp_path, routes)
    before = listing(str(tmp_path))
    env = {**os.environ, "ROADPILOT_DATA": str(data), "ROADPILOT_PREFIX": f"t{uuid.uuid4().hex[:12]}"}
    r = subprocess.run([*command, *(a.format(**paths) for a in args)], env=env, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=120)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 2 and len(lines) == 1, (r.returncode, r.stderr)
    assert says in lines[0], lines[0]
    assert listing(str(tmp_path)) == before  # no route folder, no output file, nothing half-written


# (id, environment, arguments, what the one line says): what the product CLI checks before it starts anything
ENV_ROWS = [
    ("a UI port that is not a number", {"ROADPILOT_UI_PORT": "abc"}, ["sim"], "ROADPILOT_UI_PORT must be a port"),
    ("a data folder that is a file", {"ROADPILOT_DATA": "{file}"}, ["sim"], "is not a folder"),
    ("a prefix with a slash", {"ROADPILOT_PREFIX": "a/b"}, ["manager"], "ROADPILOT_PREFIX='a/b'"),
    ("--minutes 1e-9", {}, ["sim", "--minutes", "1e-9"], "--minutes must be at least one simulated second"),
    ("--minutes nan", {}, ["sim", "--minutes", "nan"], "--minutes must be at least"),
    ("--seconds 0", {}, ["sim", "--seconds", "0"], "--seconds must be positive"),
]


@pytest.mark.parametrize("extra, args, says", [r[1:] for r in ENV_ROWS], ids=[r[0] for r in ENV_ROWS])
def test_roadpilot_refuses_a_bad_environment_in_one_line(tmp_path, extra, args, says):
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    env = {**os.environ, "ROADPILOT_DATA": str(tmp_path / "data"), "ROADPILOT_PREFIX": f"t{uuid.uuid4().hex[:12]}"}
    env.update({k: v.format(file=a_file) for k, v in extra.items()})
    r = subprocess.run([*ROADPILOT, *args], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                       timeout=120)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 2 and len(lines) == 1, (r.returncode, r.stderr)
    assert says in lines[0], lines[0]
    assert not (tmp_path / "data").exists()  # refused before anything was written
