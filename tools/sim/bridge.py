"""bridge: the simulator as the stack's car, road and camera.

    python -m tools.sim.bridge --scenario curvy --seed 3 [--lockstep] [--minutes 2] [--record out.mp4]

The world (tools/sim/lib/simulation.py) advances in 10 ms steps: the CAN-level car gets the frames the
adapter sent, the scripted driver acts, the dynamics and the traffic move, the car puts its frames on
the bus. Every 5th step (20 Hz) the camera renders a frame for camerad's sim source and `simState`
(ground truth, for scoring only) is published.

Real time (default): one step per 10 ms of CLOCK_MONOTONIC. The car's frames go to canbridged's `sim`
backend (hardware/sim_backend.py), which publishes `can` on its own tick and sends the stack's `sendcan`
back after the safety layer. Timing between the stack and the world is whatever the machine does.

Lockstep (--lockstep): deterministic, and as fast as the stack answers. The stack runs on the world's clock
(common.clock: the manager's environment says ROADPILOT_CLOCK=driven, manager_env), which the bridge moves to each
step's time (its CAN bus clock: start + 10 ms per `can`) before it puts that step's `can` out: to the daemons a
world faster than real time looks like real time (every stamp, rate and timeout is the world's), and a world
waiting for their answer stands still (no input is late). canbridged runs as on a car, with the sim backend: on the
driven clock it publishes one `can` per step the car sends (hardware/sim_backend.py), and it tells the car when it
has passed a `sendcan` through the safety layer (the end of that sendcan, also when every frame was refused). The
protocol: the stack answers every `can` with exactly one `sendcan` (card does), and the world advances one step per
answer.
  1. warm-up: the world stands at t = 0 (the car reporting its start speed) while the car's frames go out
     at real-time pace and its ECUs answer card's identification queries (a `sendcan` of diagnostic frames only
     is a query, not an answer to a step), until the stack answers at all (card identified the car, controlsd
     drives it), or for at most the config's stack_wait_s (then it runs free: as fast as it can, waiting for
     nobody). Then, still standing and still at real-time pace (whoever subscribes to the world is connected
     before it starts), one `can` per answer until the answers come one per `can` (a backlog of answers is used
     up) and an answer carries every address the stack has sent so far: a stack that sends some messages every
     n-th cycle (card: ACC_CONTROL every 3rd, HUDs every 20th/100th) is then at the same phase of its cycle
     whenever the world starts. No camera frame is drawn before the world starts: what the daemons that run on
     frames hold when it starts never depends on how long the stack took to start.
  2. then, for each step k: the world steps with the frames the stack sent in answer to step k-1, the clock moves
     to step k's time, step k goes to canbridged, and the bridge waits for the answer to it: one `sendcan` stamped at
     step k's time (one stamped earlier is a late answer to an earlier step: applied to the car, not taken for this
     step's) and, once each is seen, controlsd's `controlsState` (sent after its `carControl`), selfdrived's
     `selfdriveState` and torqued's `liveTorqueParameters` that answer step k's carState: each names the carState it
     was computed from (carStateMonoTime), so an answer to an earlier one is never taken for this step's, and no
     daemon can run a step behind the world (it did: one answer late, at the warm-up or after a stall, then one
     behind for good, and whether a daemon saw a peer's answer of this step or the last one depended on load). A
     missing answer (STEP_TIMEOUT_S of wall time, or at once when the manager says its daemon died) is logged and
     counted; that service is not waited for again until it answers, and meanwhile the world runs at real time, as a
     car goes on while a daemon restarts. After MAX_TIMEOUTS missing `sendcan` in a row the bridge stops waiting
     (the stack is gone) and runs on at real time, passing on whatever the stack still sends, until it answers again
     (a stalled or restarted card): then it waits for every step again. A second answer to
     one step is applied, counted and logged: it means the run may not repeat exactly.
     Every 5th step a camera frame is drawn (on a thread, beside the stack's work on that step); once the step is
     answered it goes to camerad, and the world waits for every answer to it: calibrationd's liveCalibration,
     modeld's modelV2 and plannerd's plan from it, at most MODEL_WAIT_S each, and not at all while one does not
     answer (modeld restarting). So no daemon falls behind the world, however fast it steps, and every step's
     inputs are the same whatever the machine's speed: the frame's answers come between two steps, always the same
     two.
No wall-clock time enters the world, the car or the safety layer, so the simState stream is a function of
(scenario, seed, driver) and of what the stack answers: with a stack whose answers depend only on the
messages it gets it is identical run after run (the lockstep test proves it with timing noise added). The whole
stack's answers are such a function too: every answer it gives to a step or a frame is in before the world steps
on, and a daemon takes a peer's message stamped at the present step only once the world has stepped on
(cereal.messaging.SubMaster on the driven clock), so the same drive gives the same carControl at every step on an
idle or a loaded machine (tests/test_determinism.py). Not covered: a daemon that dies (its restart takes wall time).

Config: the command line, or (under the manager, which passes no arguments) the JSON in ROADPILOT_SIM.
"""

import argparse
import copy
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import SimpleNamespace
from typing import TypeVar

from opendbc.car.can_definitions import CanData

from cereal import messaging
from common.clock import CLOCK_ENV, DRIVEN, WALL, DrivenClock
from common.params import Params
from common.realtime import DT_CTRL, Ratekeeper
from common.swaglog import cloudlog, cloudlog_bind
from hardware.sim_backend import SimCarLink
from selfdrive.manager.process import MANAGER_PID_ENV
from tools.sim.lib.ecus import is_diagnostic
from tools.sim.lib.sim_car import DEFAULT_PLATFORM, SIM_PLATFORMS
from tools.sim.lib.simulation import CAMERA_EVERY, SimConfig, Simulation, add_camera_args, add_steer_args, variant

PUBLISHES = ("simState",)
ENV = "ROADPILOT_SIM"
STEP_TIMEOUT_S = 2.0
MODEL_WAIT_S = STEP_TIMEOUT_S  # lockstep: the model's answer to a frame (and the plan from it), at most this long
MAX_TIMEOUTS = 3
EXPOSURE_NS = 25_000_000     # a frame's start of frame before its end (the step's time)
EXTRA_WAIT_MS = 1            # warm-up: a second answer this soon after the first means a backlog
ALIGN_MIN, ALIGN_SINGLE, ALIGN_MAX = 150, 50, 1500  # warm-up answers (see warm_up)
# what the bridge waits for, once each has been seen: card's sendcan, controlsd's controlsState, selfdrived's
# selfdriveState and torqued's liveTorqueParameters answer every step; modeld's modelV2, plannerd's longitudinalPlan
# and calibrationd's liveCalibration every camera frame. The world never runs ahead of any of them, so none lags in the
# world's time however fast the world steps
ANSWERS = ("sendcan", "controlsState", "selfdriveState", "liveTorqueParameters", "modelV2", "longitudinalPlan",
           "liveCalibration")
STEP_ANSWERS = ("controlsState", "selfdriveState", "liveTorqueParameters")  # besides sendcan: by carStateMonoTime
FRAME_ANSWERS = ("modelV2", "longitudinalPlan", "liveCalibration")
# who answers: a wait ends as soon as the manager says that daemon is gone (died, or a new one started since it
# last answered), as a car does not wait for a daemon that restarts: the world runs at real time until it answers
ANSWERED_BY = {"sendcan": "card", "controlsState": "controlsd", "selfdriveState": "selfdrived",
               "liveTorqueParameters": "torqued", "modelV2": "modeld",
               "longitudinalPlan": "plannerd", "liveCalibration": "calibrationd"}
WAIT_SLICE_MS = 50           # a wait for an answer looks at managerState this often
PACE_MAX_LAG_S = 0.1         # lockstep, stack lost: behind real time by more than this, the world does not catch up

T = TypeVar("T")


def is_query(frames: list[CanData]) -> bool:
    """A `sendcan`'s frames that are diagnostic frames only (card's identification queries)."""
    return len(frames) > 0 and all(is_diagnostic(address) for address, _, _ in frames)


def manager_env(cfg: SimConfig) -> dict[str, str]:
    """What the manager's environment carries for a sim run with `cfg`: the bridge's config, and every daemon's
    clock (common.clock): in lockstep the world's, which the bridge drives."""
    return {ENV: cfg.to_json(), CLOCK_ENV: DRIVEN if cfg.lockstep else WALL}


def forget_learned_steering(car: str) -> None:
    """Every simulated drive of `car` starts from its parameters: its true steering response is the run's own option
    (--steer-gain, ...), and torqued's estimate stored by an earlier run (LiveTorqueParameters) would make the same
    seed drive differently. Only a record of that car is removed: one for the real car this machine drives stays
    (a real car of the simulated platform shares the record: sim and car on one data folder then relearn).
    Called before the manager starts."""
    params = Params()
    stored = params.get("LiveTorqueParameters")
    if isinstance(stored, dict) and stored.get("car") == car:
        params.remove("LiveTorqueParameters")


class Bridge:
    def __init__(self, cfg: SimConfig, camera=None):
        self.cfg = cfg
        self.sim = Simulation(cfg)
        self.camera = camera
        # frames are drawn beside the steps, as a real camera works beside the CAN bus (see outputs)
        self.shots = ThreadPoolExecutor(1, thread_name_prefix="camera") if camera is not None else None
        self.shot: Future | None = None
        self.frame_id = 0
        self.to_show: tuple[int, int] | None = None  # lockstep: (frame id, time) of the frame drawn at this step
        self.takeovers_logged = 0
        self.t0_ns = time.monotonic_ns()
        self.pm = messaging.PubMaster(list(PUBLISHES))
        self.link = SimCarLink()  # the car's end of canbridged's sim backend
        self.timeouts = dict.fromkeys(ANSWERS, 0)
        if cfg.lockstep:
            self.world_clock = DrivenClock(self.t0_ns)  # the stack's clock: the bus clock of every step
            self.t0_ns = self.world_clock.ns
            self.steps = 0         # sent to canbridged
            self.commands: list[CanData] = []  # what the adapter put on the bus since the world last took it
            self.sent: list[CanData] = []    # ... of the sendcan that has not ended yet
            self.frames_to_car = 0
            self.socks = {s: messaging.sub_sock(s) for s in ANSWERS[1:]}
            self.manager = messaging.sub_sock("managerState", conflate=True)
            self.pids: dict[str, int] = {}         # the manager's newest word: pid of each running daemon
            self.answer_pid: dict[str, int] = {}   # service -> the pid of its daemon when it last answered
            self.last: dict[str, object] = {}      # service -> its last answer (an Event)
            # waited for: the frame's answers from the first frame on (no frame is drawn before the world starts),
            # the others once they have answered
            self.seen = {s: camera is not None and s in FRAME_ANSWERS for s in ANSWERS}
            self.answered: set[str] = set()  # ever (one that answered and is not waited for now is missing)
            self.in_a_row = 0
            self.extra_answers = 0
            self.stack_lost = False  # it answered, then stopped: run on (at its pace) and wait for it again
            self.resyncs = 0
            self.late_answers: Counter[str] = Counter()  # by service, once the world runs: answers to an earlier step

    @property
    def now_ns(self) -> int:
        """Lockstep: the bus clock, the time of the last step sent (start + 10 ms per step)."""
        return self.t0_ns + self.steps * 10_000_000

    def clock_ns(self) -> int:
        return self.now_ns if self.cfg.lockstep else time.monotonic_ns()

    def publish(self, frames: list[CanData]) -> None:
        """Lockstep: one step's car frames to canbridged, at that step's time (the clock moves first: canbridged
        stamps the step's `can` with it)."""
        self.steps += 1
        self.world_clock.set_ns(self.now_ns)
        self.link.send(frames)

    def take_commands(self) -> list[CanData]:
        out, self.commands = self.commands, []
        return out

    @property
    def finished(self) -> bool:
        return self.cfg.minutes > 0 and self.sim.t >= self.cfg.minutes * 60.0 - 1e-9

    # --- outputs of a step ---------------------------------------------------------------------------------
    def outputs(self) -> bool:
        """Camera frame and simState on every CAMERA_EVERY-th step; True when this was one.

        In real time the frame is drawn on the camera thread while the world goes on stepping: drawing takes
        longer than a 10 ms step, and a world that stood still for it would be a CAN bus falling silent for the stack
        (card runs a cycle of its own after 15 ms without `can`). In lockstep the stack's clock stands while the
        world waits, so the frame is drawn beside the stack's work on this step and shown once the stack has answered
        the step (show_frame); the world goes on once every answer to the frame is in: what the stack reads at each
        step never depends on how fast the machine drew, inferred or planned."""
        takeovers = self.sim.driver.takeovers
        if len(takeovers) > self.takeovers_logged:  # the supervising driver took over: say why, for the route
            for t, why in takeovers[self.takeovers_logged:]:
                cloudlog.warning(f"the driver took over at {t:.2f} s: {why}", extra={"t": t, "why": why})
            self.takeovers_logged = len(takeovers)
        if self.sim.k % CAMERA_EVERY:
            return False
        ns = self.clock_ns()
        if self.camera is not None and self.cfg.lockstep:
            self.shot_done()
            world, state = self.seen_by_camera()
            self.shot = self.shots.submit(self.camera.render, world, state)
            self.to_show = (self.frame_id, ns)
            self.frame_id += 1
        else:
            self.shoot()
        self.send_sim_state(ns)
        return True

    def send_sim_state(self, ns: int) -> None:
        msg = messaging.new_message("simState")
        if self.cfg.lockstep:
            msg.logMonoTime = ns
        self.sim.fill_sim_state(msg.simState)
        msg.simState.wallMonoTime = time.monotonic_ns()
        self.pm.send("simState", msg)

    # --- real time -------------------------------------------------------------------------------------------
    def run_realtime(self) -> None:
        rk = Ratekeeper(1.0 / DT_CTRL, print_delay_threshold=0.05, wall=True)
        shown = False
        while not self.finished:
            self.link.send(self.sim.step(self.link.recv()))
            shown = self.outputs()
            rk.keep_time()
        self.last_state(shown)

    # --- lockstep --------------------------------------------------------------------------------------------
    def _arrivals(self, service: str, receive: Callable[[int], T | None], timeout_ms: int) -> Iterator[T]:
        """What receive(ms) brings for `service` within `timeout_ms` of wall time, looked at every WAIT_SLICE_MS: the
        wait also ends as soon as the manager says the daemon that answers `service` is gone."""
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            got = receive(min(WAIT_SLICE_MS, max(0, int((deadline - time.monotonic()) * 1000))))
            if got is not None:
                yield got
            elif time.monotonic() >= deadline or self._gone(service):
                return

    def _take_sendcan(self, timeout_ms: int) -> bool:
        """The end of the next `sendcan` canbridged handled, within `timeout_ms` (True: one came); the frames the
        safety layer let through reach the car. A `sendcan` of diagnostic frames only is card identifying the car
        (firmware queries, on its own clock): it reaches the car's ECUs but is not an answer to a step, so the wait
        goes on."""
        for stamp, frames in self._arrivals("sendcan", self.link.take, timeout_ms):
            if frames:  # a frame as it went out; its sendcan ends with a tag
                self.sent += frames
                continue
            sent, self.sent = self.sent, []
            self.commands += sent
            self.frames_to_car += len(sent)
            if is_query(sent) or self._late_sendcan(stamp):
                continue
            self._answered("sendcan")
            return True
        return False

    def _late_sendcan(self, stamp: int) -> bool:
        """A sendcan stamped before this step (the stack runs on our clock): a late answer to an earlier step, its
        frames applied to the car but not taken for this step's answer, so one late answer costs one step's wait, not
        every step after it."""
        if stamp >= self.now_ns:
            return False
        self.late_answers["sendcan"] += 1
        return True

    def _take(self, service: str, timeout_ms: int):
        """The next message of `service` (one the stack answers with besides sendcan) within `timeout_ms`, an Event."""
        for dat in self._arrivals(service, self.socks[service].receive, timeout_ms):
            try:
                ev = messaging.log_from_bytes(dat)
            except messaging.MalformedMessage:
                continue
            if service in STEP_ANSWERS and not self._answers_step(ev):
                self.late_answers[service] += 1  # an answer to an earlier carState: not this step's
                continue
            self._answered(service)
            self.last[service] = ev
            return ev
        return None

    def _answers_step(self, ev) -> bool:
        """A step answer computed from this step's carState (or a newer one)."""
        return getattr(ev, ev.which()).carStateMonoTime >= self.now_ns

    @property
    def missing(self) -> set[str]:
        """Services that answered, then stopped (not waited for now): the world runs at real time until they answer."""
        return {s for s in self.answered if not self.seen[s]}

    def _answered(self, service: str) -> None:
        self.seen[service] = True
        self.answered.add(service)
        self._poll_manager()
        self.answer_pid[service] = self.pids.get(ANSWERED_BY[service], 0)

    def _poll_manager(self) -> None:
        dat = self.manager.receive(0)
        if dat is not None:
            try:
                procs = messaging.log_from_bytes(dat).managerState.processes
                self.pids = {p.name: p.pid if p.running else 0 for p in procs}
            except (messaging.MalformedMessage, AttributeError):
                pass

    def _gone(self, service: str) -> bool:
        """The manager says the daemon that answers `service` is not the one that last answered (it died; a new one
        may be starting). Without a manager (a test's stand-in stack) nothing is ever gone: waits time out."""
        self._poll_manager()
        name = ANSWERED_BY[service]
        return name in self.pids and self.pids[name] != self.answer_pid.get(service, self.pids[name])

    def _diagnose(self) -> None:
        """While the world stands (warm-up): the car's ECUs get what the tester sent (identification); commands
        for the standing world are not the world's."""
        for address, dat, bus in self.take_commands():
            if is_diagnostic(address):
                self.sim.car.ecus.receive(address, dat, bus)

    def _answers(self, timeout_ms: int, extra_ms: int = 0) -> tuple[int, set[int]]:
        """The stack's answer to the last step, plus any more already queued or arriving within extra_ms:
        (how many, the addresses that reached the car)."""
        n, addrs = 0, set()
        while self._take_sendcan(timeout_ms if n == 0 else extra_ms):
            n += 1
        addrs |= {address for address, _, _ in self.commands}
        return n, addrs

    def warm_up(self) -> None:
        """The world stands at t = 0 (the car reporting its start speed) until the stack answers, then until
        its answers are one per `can` and in phase with its own cycle (see the module doc)."""
        rk = Ratekeeper(1.0 / DT_CTRL, wall=True)
        deadline = time.monotonic() + self.cfg.stack_wait_s
        self.sim.car.motion = self.sim.motion()
        k = 0
        while not self.seen["sendcan"] and time.monotonic() < deadline:
            k += 1
            self._diagnose()
            self.publish(self.sim.car.frames(k * 10))
            self._drain()
            self._take_sendcan(max(1, int(rk.interval * 1000)))
            rk.keep_time()
        if not self.seen["sendcan"]:
            cloudlog.warning("lockstep: no stack answered within the warm-up: running free",
                             extra={"s": self.cfg.stack_wait_s})
            return
        seen: set[int] = set()
        single = 0
        due = time.monotonic()
        for j in range(ALIGN_MAX):
            k += 1
            self._diagnose()
            self.publish(self.sim.car.frames(k * 10))
            n, addrs = self._answers(int(STEP_TIMEOUT_S * 1000), EXTRA_WAIT_MS)
            self._drain()
            seen |= addrs
            single = single + 1 if n == 1 else 0
            if j >= ALIGN_MIN and single >= ALIGN_SINGLE and addrs >= seen:
                break
            # still at real time (1.5 s at least): whoever subscribes to the world (loggerd, a test) is connected
            # before it starts
            due = self._pace(due)
        else:
            cloudlog.warning("lockstep: the stack's answers did not line up: starting anyway", extra={"steps": k})
        self._diagnose()
        self.late_answers.clear()  # the warm-up's steps are not waited for: late answers there are no news
        cloudlog.info("lockstep: the stack answers, the world starts", extra={"warmup_steps": k,
                                                                             "stack_sends": sorted(seen)})

    def wait_stack(self) -> None:
        if not self.seen["sendcan"]:
            if self.stack_lost:
                self._listen_again()
            return
        n, _ = self._answers(int(STEP_TIMEOUT_S * 1000))
        missed = n == 0
        if missed and self._gone("sendcan"):
            self.in_a_row = MAX_TIMEOUTS - 1  # card died: no point in waiting for it again
        if n > 1:
            self.extra_answers += n - 1
            cloudlog.warning("lockstep: the stack answered a step more than once", extra={"t": self.sim.t, "n": n})
        self.timeouts["sendcan"] += int(missed)
        self.in_a_row = self.in_a_row + 1 if missed else 0
        if missed:
            cloudlog.warning("lockstep: the stack did not answer a step", extra={"t": self.sim.t, **self.timeouts})
        for service in STEP_ANSWERS:
            self._wait_for(service, self._answers_step, STEP_TIMEOUT_S)
        if self.in_a_row >= MAX_TIMEOUTS:
            cloudlog.error("lockstep: the stack stopped answering: running on without it until it answers again")
            self.seen = dict.fromkeys(self.seen, False)
            self.stack_lost = True

    def _drain(self) -> None:
        """Takes what the stack answered besides sendcan (while the world stands or the stack is lost: nothing
        waits for it, but a service answering at all is then waited for)."""
        for service in ANSWERS[1:]:
            while self._take(service, 0) is not None:
                pass

    def _listen_again(self) -> None:
        """While the stack is lost: its commands still reach the car, and once it answers (a stalled or
        restarted card) the bridge waits for it again, step by step."""
        n, _ = self._answers(0)
        self._drain()
        if n:
            self.stack_lost, self.in_a_row = False, 0
            self.resyncs += 1
            cloudlog.warning("lockstep: the stack answers again: waiting for it again", extra={"t": self.sim.t})

    def seen_by_camera(self):
        """What the camera sees of this step: the traffic moves on in place while it draws."""
        return SimpleNamespace(road=self.sim.world.road, vehicles=[copy.copy(v) for v in self.sim.world.vehicles]), \
            self.sim.state

    def shoot(self) -> None:
        """Starts drawing and showing this step's frame on the camera thread (after the one in flight is out)."""
        if self.camera is not None:
            self.shot_done()
            ns = self.clock_ns()
            self.shot = self.shots.submit(self.camera.shoot, *self.seen_by_camera(), self.frame_id, ns - EXPOSURE_NS,
                                          ns)
        self.frame_id += 1

    def show_frame(self) -> None:
        """Lockstep: the frame drawn at this step goes to camerad, and the world waits for its answers."""
        if self.to_show is None:
            return
        (frame_id, ns), self.to_show = self.to_show, None
        self.shot_done()
        self.camera.deliver(frame_id, ns - EXPOSURE_NS, ns)
        self.wait_model(frame_id)

    def shot_done(self) -> None:
        """Waits for the frame in flight (camerad has it, or did not take it)."""
        if self.shot is not None:
            self.shot.result()
            self.shot = None

    def wait_model(self, want: int) -> None:
        """The answers to frame `want` (calibrationd's and the model's, and plannerd's plan from the model's) before
        the world steps on: none of them falls behind the world (the stack's clock stands still while the bridge
        waits). One that does not answer within MODEL_WAIT_S is counted, and not waited for again until it answers (a
        modeld that died and is restarting must not stall the world)."""
        if not self.seen["sendcan"]:
            return
        self._wait_for("liveCalibration", lambda ev: ev.liveCalibration.frameId >= want, MODEL_WAIT_S)
        model = self._wait_for("modelV2", lambda ev: ev.modelV2.frameId >= want, MODEL_WAIT_S)
        if model is not None:
            self._wait_for("longitudinalPlan", lambda ev: ev.longitudinalPlan.modelMonoTime >= model.logMonoTime,
                           MODEL_WAIT_S)

    def _wait_for(self, service: str, answers, timeout_s: float):
        """The first `service` message for which answers(event) holds (None: it did not come or is not waited for).
        A service that does not answer within timeout_s of wall time, or whose daemon the manager says is gone (it
        died: the manager restarts it), is not waited for again until it answers, and meanwhile the world runs at real
        time, as a car goes on while a daemon restarts: the stack sees it gone for as long as a car would."""
        if not self.seen[service]:
            while self._take(service, 0) is not None:  # it answers again: waited for from the next time
                pass
            return None
        if service in self.last and answers(ev := self.last[service]):
            return ev  # came while nothing waited (the warm-up's last frame)
        deadline = time.monotonic() + timeout_s
        while (ev := self._take(service, max(0, int((deadline - time.monotonic()) * 1000)))) is not None:
            if answers(ev):
                return ev
        self.timeouts[service] += 1
        self.seen[service] = False
        if service not in self.answered:  # not running (left out, or still starting): nothing to wait for
            cloudlog.warning(f"lockstep: {service} never answered: not waiting for it until it does",
                             extra={"t": self.sim.t, **self.timeouts})
            return None
        cloudlog.warning(f"lockstep: {service} did not answer: the world runs at real time without it until it answers",
                         extra={"t": self.sim.t, **self.timeouts})
        return None

    def run_lockstep(self) -> None:
        self.warm_up()
        # as fast as the stack answers: its daemons run on the world's clock (common.clock), which moves one step
        # per `can`, so a world faster than real time looks like real time to them. While the stack is lost (card
        # restarting) or one of the daemons it waits for is missing, the world runs on at real time, as a car would.
        due = time.monotonic()
        shown = False
        while not self.finished:
            self.publish(self.sim.step(self.take_commands()))
            shown = self.outputs()
            self.wait_stack()
            self.show_frame()
            due = self._pace(due) if self.stack_lost or self.missing else time.monotonic()
        self.last_state(shown)

    def last_state(self, shown: bool) -> None:
        """The drive's last step as a simState of its own, when that step was not one that sent one: whoever waits
        for the end of the drive (`roadpilot sim`) sees it, not a state up to one period short of it."""
        if not shown and self.finished:
            self.send_sim_state(self.clock_ns())

    @staticmethod
    def _pace(due: float) -> float:
        """Sleeps until the next step is due (`due` + one step); returns that deadline."""
        due += DT_CTRL
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        return max(due, now - PACE_MAX_LAG_S)

    def run(self) -> None:
        try:
            (self.run_lockstep if self.cfg.lockstep else self.run_realtime)()
        finally:
            if self.shots is not None:
                self.shots.shutdown(wait=True)  # the last frame reaches camerad and the recording

    def summary(self) -> dict:
        ta = self.sim.tally
        out = {"scenario": self.cfg.scenario, "seed": self.cfg.seed, "t": round(self.sim.t, 2),
               "distance_m": round(ta.distance, 1), "collision_steps": ta.collision_steps,
               "departure_steps": ta.departure_steps, "engaged_s": round(ta.engaged_steps * DT_CTRL, 2),
               "car_refused": self.sim.car.status.refused, "takeovers": self.sim.driver.takeovers}
        if self.cfg.lockstep:
            out.update(lockstep_timeouts=self.timeouts, lockstep_extra_answers=self.extra_answers,
                       lockstep_resyncs=self.resyncs, lockstep_late_answers=dict(self.late_answers),
                       frames_to_car=self.frames_to_car)
        if self.camera is not None:
            out["camera"] = vars(self.camera.stats)
        return out


def config_from(args: argparse.Namespace, env: str | None) -> SimConfig:
    if env is not None and not args.explicit:
        return SimConfig.from_json(env)
    return SimConfig(scenario=args.scenario, seed=args.seed, car=args.car, driver=args.driver,
                     use_cruise=args.use_cruise, lockstep=args.lockstep, minutes=args.minutes,
                     camera=not args.no_camera, record=args.record, **variant(args))


def main(argv: list[str] | None = None) -> None:
    cloudlog_bind(name="bridge")
    ap = argparse.ArgumentParser(prog="bridge", description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="highway")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--car", choices=list(SIM_PLATFORMS), default=DEFAULT_PLATFORM,
                    help=f"the simulated car (default {DEFAULT_PLATFORM}; the stack identifies it by firmware query)")
    ap.add_argument("--driver", choices=("manual", "supervise"), default="manual")
    ap.add_argument("--use-cruise", action="store_true", help="a manual driver that also sets the cruise")
    ap.add_argument("--lockstep", action="store_true")
    ap.add_argument("--minutes", type=float, default=0.0, help="simulated minutes, then stop (0: forever)")
    ap.add_argument("--no-camera", action="store_true", help="render no frames")
    ap.add_argument("--record", default="", help="write the camera's frames to this mp4")
    ap.add_argument("--look-seed", type=int, default=None, help="domain randomisation of the picture (default: plain)")
    add_steer_args(ap)
    add_camera_args(ap)
    argv = sys.argv[1:] if argv is None else argv
    args = ap.parse_args(argv)
    args.explicit = bool(argv)
    try:
        cfg = config_from(args, os.environ.get(ENV))
    except ValueError as e:
        cloudlog.error(f"bridge: {e}")
        sys.exit(2)
    camera = None
    if cfg.camera or cfg.record:
        from tools.sim.lib.camera_out import CameraOut
        camera = CameraOut(args.look_seed, push=cfg.camera, record=cfg.record, camera=cfg.camera_model())
    bridge = Bridge(cfg, camera)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    cloudlog.info("bridge started", extra={"config": cfg.to_json()})
    try:
        bridge.run()
    finally:
        if camera is not None:
            camera.close()
        cloudlog.info("bridge summary", extra={"summary": bridge.summary()})
    if os.environ.get(MANAGER_PID_ENV):  # under the manager: a finished drive waits to be stopped, not restarted
        signal.pause()


if __name__ == "__main__":
    main()
