"""One closed-loop drive for the tests: the manager in sim mode, lockstep, with the real onboard stack.

The bridge (the simulator in lockstep), canbridged (its sim backend and the safety layer), camerad, modeld,
calibrationd, card, plannerd, controlsd, selfdrived, torqued, hardwared and loggerd run as the manager starts them in
`roadpilot sim --lockstep`; only what neither drives nor records the drive is left out (NOT_NEEDED). The
scripted driver supervises: it engages the cruise with the stalk and lets the stack drive, taking over when
the car drifts or closes in too fast (tools/sim/lib/driver.py).

The drive is judged afterwards from its recorded route by `roadpilot sim`'s own report
(tools/sim/lib/drive_report.py: simState's ground truth against selfdriveState). While it runs, the test
watches what it needs to act on and to check live: selfdriveState's transitions on the simulated clock,
managerState, and any service it names (every message kept, in arrival order).
"""

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import zmq

from cereal import messaging
from common.params import Params
from common.paths import routes_dir
from selfdrive.locationd.calibration import MIN_BLOCKS, Calibrator
from tools.cli import stop_manager
from tools.sim.bridge import forget_learned_steering, manager_env
from tools.sim.lib.drive_report import DriveReport
from tools.sim.lib.simulation import SimConfig

# encoderd (the video) and uid (the browser UI) take CPU from the stack on a 2-core machine and neither drives nor
# scores the drive
NOT_NEEDED = ("encoderd", "uid")
STACK_WAIT_S = 90.0         # the world waits this long for the stack's first answer (12 processes start on 2 cores)
NO_PROGRESS_S = 60.0        # wall seconds without a simState: the drive is stuck (before the first one: the world
                            # may wait STACK_WAIT_S for the stack, 12 processes starting beside other drives, first)


@dataclass(frozen=True)
class Transition:
    """selfdriveState changed (state, enabled or the alert shown), at simulated time t."""
    t: float
    state: str
    enabled: bool
    alert: str


def store_calibration() -> None:
    """A car that was calibrated on an earlier drive: the sim camera is mounted straight (renderer: pitch = yaw =
    0), which is what a finished calibration holds; calibrationd goes on refining it from the model. Without it
    the first ~17 s of every drive go to calibrating, and the scenarios' events (cut_in's at 10 s) would come
    before the stack may engage."""
    cal = Calibrator(rpy=(0.0, 0.0, 0.0), blocks=[(0.0, 0.0)] * MIN_BLOCKS, valid_blocks=MIN_BLOCKS)
    Params().put("CalibrationParams", cal.to_bytes())


class Drive:
    """The manager in sim mode as a child process; `run_until` pumps the messages the test watches."""

    def __init__(self, log_dir: Path, scenario: str, seed: int, seconds: float, watch: tuple[str, ...] = (),
                 block: tuple[str, ...] = NOT_NEEDED, calibrated: bool = True, **sim_options):
        self.cfg = SimConfig(scenario=scenario, seed=seed, driver="supervise", lockstep=True, minutes=seconds / 60.0,
                             stack_wait_s=STACK_WAIT_S, **sim_options)
        self.log_path = log_dir / f"manager-{scenario}-{seed}.log"
        self.block = block
        self.calibrated = calibrated  # False: the params hold whatever calibration the caller left there
        self.transitions: list[Transition] = []
        self.raw: dict[str, list[bytes]] = {s: [] for s in watch}
        self.manager_state = None
        self.selfdrive_state = None
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0
        self.wall_s = 0.0
        self.clock: list[tuple[float, float]] = []  # (our monotonic s, simulated s) at each simState
        self._t = 0.0
        services = ("selfdriveState", "managerState", *watch, "simState")  # simState last: see pump()
        self.socks = {s: messaging.sub_sock(s) for s in dict.fromkeys(services)}
        self.poller = zmq.Poller()
        for s in self.socks.values():
            self.poller.register(s.sock, zmq.POLLIN)

    # --- life ------------------------------------------------------------------------------------------------
    def start(self) -> "Drive":
        if self.calibrated:
            store_calibration()
        forget_learned_steering(self.cfg.car)
        env = {**os.environ, **manager_env(self.cfg), "BLOCK": ",".join(self.block)}
        self.log = open(self.log_path, "wb")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "selfdrive.manager.manager", "sim"], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_manager(self.proc)
        if not self.wall_s:
            self.wall_s = time.monotonic() - self.started_at
        self.log.close()
        for s in self.socks.values():
            s.close()
        self.socks = {}

    def __enter__(self) -> "Drive":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_tail(self, n: int = 6000) -> str:
        self.log.flush()
        return self.log_path.read_bytes()[-n:].decode(errors="replace")

    # --- messages --------------------------------------------------------------------------------------------
    @property
    def t(self) -> float:
        """Simulated seconds of the newest simState."""
        return self._t

    def pump(self, timeout_ms: int = 100) -> None:
        """Takes everything waiting. simState is drained last, so a transition is stamped with the simulated time
        of the step the stack was answering."""
        self.poller.poll(timeout_ms)
        for service, sock in self.socks.items():
            while (dat := sock.receive(0)) is not None:
                self._on(service, dat)

    def _on(self, service: str, dat: bytes) -> None:
        if service in self.raw:
            self.raw[service].append(dat)
        if service == "selfdriveState":
            sd = self.selfdrive_state = messaging.log_from_bytes(dat).selfdriveState
            tr = Transition(self._t, str(sd.state), sd.enabled, " / ".join(x for x in (sd.alertText1, sd.alertText2)
                                                                           if x))
            last = self.transitions[-1] if self.transitions else None
            if last is None or (last.state, last.enabled, last.alert) != (tr.state, tr.enabled, tr.alert):
                self.transitions.append(tr)
        elif service == "managerState":
            self.manager_state = messaging.log_from_bytes(dat).managerState
        elif service == "simState":
            self._t = messaging.log_from_bytes(dat).simState.t
            self.clock.append((time.monotonic(), self._t))

    def run_until(self, t: float, until=None) -> None:
        """Pumps until the simulated time reaches `t`, or until `until(self)` is true. Fails when the manager ends
        or no simState comes for NO_PROGRESS_S (STACK_WAIT_S more before the first)."""
        last_progress, seen = time.monotonic(), len(self.clock)
        while self._t < t - 1e-6 and not (until is not None and until(self)):
            if self.proc.poll() is not None:
                raise AssertionError(f"the manager exited ({self.proc.returncode}):\n{self.log_tail()}")
            self.pump()
            stuck_s = NO_PROGRESS_S + (0.0 if self.clock else STACK_WAIT_S)
            if len(self.clock) != seen:
                last_progress, seen = time.monotonic(), len(self.clock)
            elif time.monotonic() - last_progress > stuck_s:
                raise AssertionError(f"no simState for {stuck_s:.0f} s at t={self._t}:\n{self.log_tail()}")

    def drive(self) -> DriveReport:
        """The whole drive; then the manager stopped and the recorded route scored."""
        self.run_until(self.cfg.minutes * 60.0)
        self.wall_s = time.monotonic() - self.started_at
        self.stop()
        return self.report()

    def report(self) -> DriveReport:
        routes = sorted(os.listdir(routes_dir())) if os.path.isdir(routes_dir()) else []
        assert len(routes) == 1, f"expected the one route of this drive, found {routes}"
        return DriveReport.from_route(os.path.join(routes_dir(), routes[0]))

    # --- the processes ---------------------------------------------------------------------------------------
    def process(self, name: str):
        """This process's entry in the newest managerState (None before the first)."""
        if self.manager_state is None:
            return None
        return next((p for p in self.manager_state.processes if p.name == name), None)

    def _last_logged(self, what: str, key: str) -> dict | None:
        text = self.log_path.read_text(errors="replace")
        lines = [ln for ln in text.splitlines() if f"{what} " in ln]
        if not lines:
            return None
        return json.loads(lines[-1].split(f"{what} ", 1)[1])[key]

    def bridge_summary(self) -> dict | None:
        """The bridge's own summary (it logs one when the drive ends or it is stopped)."""
        return self._last_logged("bridge summary", "summary")

    def adapter_status(self) -> dict | None:
        """canbridged's counters and safety mode, as it logged them last (at the latest when it stopped)."""
        return self._last_logged("canbridged status", "status")


def describe(r: DriveReport, wall_s: float) -> str:
    """One line for the test's output: the numbers the closed-loop tests judge."""
    gap = "none" if r.min_time_gap_s is None else f"{r.min_time_gap_s:.2f} s at {r.min_time_gap_t:.1f} s"
    lat = "n/a" if r.lat_err_mean_m is None else f"{r.lat_err_mean_m:.3f} m (p95 {r.lat_err_p95_m:.3f} m)"
    return (f"{r.scenario} seed {r.seed}: {r.minutes * 60:.1f} s simulated in {wall_s:.0f} s wall; engaged "
            f"{100 * r.engaged_fraction:.1f}% since {r.first_engaged_t} s, {len(r.disengagements)} disengagements "
            f"{[(d.t, d.reason) for d in r.disengagements]}; collisions {r.collisions}, lane departures "
            f"{r.lane_departures}; |lateral error| {lat}; min time gap {gap}; missed model frames "
            f"{r.missed_model_frames}; cpu {r.cpu_total_cores} cores {r.cpu_cores}; alerts {r.alerts}")
