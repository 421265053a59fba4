"""One drive of a sweep (`roadpilot eval`), in a process of its own:

    python -m tools.sim.lib.eval_drive SPEC_JSON FOLDER

The whole stack (tools/sim/lib/stack_drive.Drive: the manager in sim mode, lockstep, the scripted driver
supervising) drives the spec's scenario, seed and car with FOLDER/data as its data folder and a prefix of its own,
so drives can run side by side on one machine. Writes FOLDER/result.json (what `tools.sim.eval` aggregates):
{"status": "ok", "report": DriveReport.to_dict(), "verdict": what falls short of the thresholds, "route": the route
folder relative to FOLDER, "wall_s": ...} or {"status": "failed", "reason": one line}.
The manager's log stays in FOLDER.
"""

import json
import os
import shutil
import signal
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULT = "result.json"


@dataclass(frozen=True)
class DriveSpec:
    """One drive of a sweep: the scenario, seed and simulated car, its length, and the sim's car/camera variant
    (SimConfig fields: steer_gain, camera_fov, ...)."""
    scenario: str
    seed: int
    car: str
    minutes: float
    variant: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The drive's folder name: unique within a sweep."""
        return f"{self.scenario}-{self.seed}-{self.car}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "DriveSpec":
        return cls(**json.loads(text))


def write_result(folder: Path, result: dict) -> None:
    """result.json, written whole or not at all (a sweep that resumes trusts any it finds)."""
    tmp = folder / (RESULT + ".tmp")
    tmp.write_text(json.dumps(result, indent=1, allow_nan=False, default=str) + "\n")
    os.replace(tmp, folder / RESULT)


def read_result(folder: Path) -> dict | None:
    try:
        return json.loads((folder / RESULT).read_text())
    except (OSError, ValueError):
        return None


def drive(spec: DriveSpec, folder: Path) -> dict:
    """Runs the drive; returns what goes into result.json. Imports the stack only here: the environment (data
    folder, prefix) must be set before common.paths is read."""
    from tools.sim.lib.stack_drive import Drive
    t0 = time.monotonic()
    with Drive(folder, spec.scenario, spec.seed, spec.minutes * 60.0, car=spec.car, **spec.variant) as d:
        report = d.drive()
    report.save(str(folder))
    return {"status": "ok", "report": report.to_dict(), "verdict": report.verdict(),
            "route": os.path.relpath(report.route, folder), "wall_s": round(time.monotonic() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m tools.sim.lib.eval_drive SPEC_JSON FOLDER", file=sys.stderr)
        return 2
    spec, folder = DriveSpec.from_json(argv[0]), Path(argv[1])
    # a Ray worker starts us with SIGINT blocked, and the manager and its daemons would inherit the mask: Ctrl-C (how
    # Drive stops the manager) would then do nothing until the 30 s grace ran out
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    folder.mkdir(parents=True, exist_ok=True)
    # its own data folder and prefix (sockets, shared memory, params): other drives run beside it
    os.environ["ROADPILOT_DATA"] = str(folder / "data")
    os.environ["ROADPILOT_PREFIX"] = f"eval-{uuid.uuid4().hex[:12]}"
    from common.paths import run_dir
    try:
        result = drive(spec, folder)
    except Exception as e:  # noqa: BLE001 - whatever stops a drive is its result, in one line
        result = {"status": "failed", "reason": f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}"
                  if str(e).strip() else type(e).__name__}
    finally:
        shutil.rmtree(run_dir(), ignore_errors=True)  # the drive's sockets
    write_result(folder, result)
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
