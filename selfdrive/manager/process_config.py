"""The one table of processes the manager runs.

A process runs when its predicate says so for the current run (mode, later more). Predicates are tiny
functions that combine (`all_of`, `any_of`, `negate`), so a row reads like a sentence. A test fails when a
row's module is missing, has no main(), or does not declare PUBLISHES (the services it publishes; a daemon that
reads a fixed set also declares SUBSCRIBES): replay and process replay read them, and process replay checks them
against what the daemon's sockets do.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

Mode = Literal["sim", "replay", "device"]
MODES: tuple[Mode, ...] = get_args(Mode)


@dataclass(frozen=True)
class RunContext:
    """What a predicate may look at. Built once per manager run from the typed config."""
    mode: Mode


Predicate = Callable[[RunContext], bool]


def always(ctx: RunContext) -> bool:
    return True


def sim(ctx: RunContext) -> bool:
    return ctx.mode == "sim"


def replay(ctx: RunContext) -> bool:
    return ctx.mode == "replay"


def device(ctx: RunContext) -> bool:
    return ctx.mode == "device"


def any_of(*preds: Predicate) -> Predicate:
    return lambda ctx: any(p(ctx) for p in preds)


def all_of(*preds: Predicate) -> Predicate:
    return lambda ctx: all(p(ctx) for p in preds)


def negate(pred: Predicate) -> Predicate:
    return lambda ctx: not pred(ctx)


@dataclass(frozen=True)
class RestartPolicy:
    """Exponential backoff: wait `initial_s`, doubling up to `max_s`; a run of `stable_s` resets it."""
    initial_s: float = 0.5
    max_s: float = 10.0
    stable_s: float = 30.0
    enabled: bool = True


@dataclass(frozen=True)
class ProcessConfig:
    name: str                  # also the process title, "roadpilot:<name>"
    module: str                # run as `python -m selfdrive.manager.launcher <name> <module>`; must define main()
    should_run: Predicate
    restart: RestartPolicy = RestartPolicy()
    # stop order: higher waves stop after lower ones, so what the daemons say as they stop is still recorded
    # (the recorders feeding loggerd in wave 1, loggerd itself in wave 2)
    stop_wave: int = 0

    def runs_in(self, mode: Mode) -> bool:
        return self.should_run(RunContext(mode))


PROCESSES: tuple[ProcessConfig, ...] = (
    ProcessConfig("logmessaged", "selfdrive.logmessaged", always, stop_wave=1),
    ProcessConfig("loggerd", "selfdrive.loggerd.loggerd", always, stop_wave=2),
    ProcessConfig("hardwared", "hardware.hardwared", always),
    # replay serves the recorded route's frames itself; sim gets camerad's sim source, device its webcam
    ProcessConfig("camerad", "selfdrive.camerad.camerad", any_of(sim, device)),
    ProcessConfig("encoderd", "selfdrive.loggerd.encoderd", any_of(sim, device), stop_wave=1),
    # the driving model and the camera calibration it is warped with (in replay both come from the route)
    ProcessConfig("modeld", "selfdrive.modeld.modeld", any_of(sim, device)),
    ProcessConfig("calibrationd", "selfdrive.locationd.calibrationd", any_of(sim, device)),
    # the car: canbridged moves frames between the CAN backend (ROADPILOT_CAN_BACKEND; sim in sim mode) and the
    # stack; card turns them into carState. In replay the recorded `can` feeds card directly.
    ProcessConfig("canbridged", "hardware.canbridged", any_of(sim, device)),
    ProcessConfig("card", "selfdrive.car.card", always),
    # the onboard decision makers run in every mode: in replay they re-drive a recorded route with new code
    ProcessConfig("plannerd", "selfdrive.controls.plannerd", always),
    ProcessConfig("controlsd", "selfdrive.controls.controlsd", always),
    ProcessConfig("selfdrived", "selfdrive.selfdrived.selfdrived", always),
    ProcessConfig("torqued", "selfdrive.locationd.torqued", always),  # learns the car's steering response
    # the simulator: the car, the road and the camera of sim mode (its config comes in ROADPILOT_SIM)
    ProcessConfig("bridge", "tools.sim.bridge", sim),
    ProcessConfig("uid", "selfdrive.ui.uid", always),  # the browser UI: what the system sees and will do
    # replay mode's source of everything recorded (route and options in ROADPILOT_REPLAY_ARGS); it ends with the
    # route, so it is not restarted
    ProcessConfig("replay", "tools.replay.replay", replay, RestartPolicy(enabled=False)),
)


def process_names() -> tuple[str, ...]:
    return tuple(p.name for p in PROCESSES)
