"""Stand-ins for the processes around the controls stack, for process tests:
`python -m selfdrive.selfdrived.tests.fake_inputs SERVICE...` publishes each SERVICE at its rate from
cereal/services.py with healthy content (a straight road at 20 m/s, a calibrated camera, a cool device
with free disk, every process running), until killed. Prints "ready" once its sockets are bound.
"""

import sys
import time

from cereal import messaging
from cereal.services import SERVICES
from selfdrive.controls.tests.synth import fill_model

PROCESSES = ("plannerd", "controlsd", "selfdrived", "modeld", "card")


def fill(msg, service: str, frame: int) -> None:
    if service == "modelV2":
        fill_model(msg.modelV2, v=20.0, frame_id=frame)
    elif service == "liveCalibration":
        cal = msg.liveCalibration
        cal.calStatus, cal.calPerc, cal.rpyCalib = "calibrated", 100, [0.0, 0.0, 0.0]
    elif service == "deviceState":
        ds = msg.deviceState
        ds.started, ds.freeSpacePercent, ds.thermalStatus, ds.maxTempC = True, 50.0, "green", 50.0
        for st, name in zip(ds.init("storage", 2), ("params", "routes"), strict=True):
            st.name, st.freeSpacePercent, st.freeBytes, st.writable = name, 50.0, 10**10, True
    elif service == "loggerState":
        ls = msg.loggerState
        ls.route, ls.writing = "2026-12-05--12-00-00", True
    elif service == "adapterState":
        st = msg.adapterState
        st.safetyMode, st.car, st.controlsAllowed = "toyota:329", "enabled", True
    elif service == "carState":
        cs = msg.carState
        cs.vEgo, cs.vEgoRaw, cs.canValid, cs.gearShifter = 20.0, 20.0, True, "drive"
        cs.cruiseState.available, cs.cruiseState.speed = True, 25.0
    elif service == "longitudinalPlan":
        p = msg.longitudinalPlan
        p.t = [0.0, 1.0, 10.0]
        p.speeds, p.accels = [20.0, 20.0, 20.0], [0.0, 0.0, 0.0]
    elif service in ("controlsState", "selfdriveState", "liveTracks", "carControl", "carOutput",
                     "liveTorqueParameters"):
        pass  # their defaults are a healthy, quiet state (a radar that sees nothing ahead)
    elif service == "managerState":
        procs = msg.managerState.init("processes", len(PROCESSES))
        for p, name in zip(procs, PROCESSES, strict=True):
            p.name, p.running, p.shouldBeRunning, p.pid = name, True, True, 1
    else:
        raise ValueError(f"fake_inputs cannot make {service}")


def main(services: list[str]) -> None:
    pm = messaging.PubMaster(services)
    start = time.monotonic()
    due = dict.fromkeys(services, start)
    frames = dict.fromkeys(services, 0)
    print("ready", flush=True)
    while True:
        now = time.monotonic()
        for s in services:
            if now >= due[s]:
                msg = messaging.new_message(s)
                fill(msg, s, frames[s])
                pm.send(s, msg)
                frames[s] += 1
                due[s] += 1.0 / SERVICES[s].frequency
        time.sleep(max(0.0, min(due.values()) - time.monotonic()))


if __name__ == "__main__":
    main(sys.argv[1:])


class Feeder:
    """A synthetic timeline for SubMaster.update_msgs: every service at its rate with healthy content,
    stamped with fake monotonic times, so daemon classes run deterministically without sockets.
    `edit[service]` changes that service's messages; services in `stopped` are no longer sent."""

    def __init__(self, services, t0: float = 100.0, dt: float = 0.01):
        self.t, self.dt = t0, dt
        self.services = list(services)
        self.due = dict.fromkeys(self.services, t0)
        self.frames = dict.fromkeys(self.services, 0)
        self.edit: dict = {}
        self.stopped: set[str] = set()

    def step(self) -> list:
        out = []
        for s in self.services:
            if s in self.stopped or self.t < self.due[s] - 1e-9:
                continue
            msg = messaging.new_message(s)
            msg.logMonoTime = int(self.t * 1e9)
            fill(msg, s, self.frames[s])
            if s in self.edit:
                self.edit[s](msg)
            out.append(messaging.log_from_bytes(msg.to_bytes()))
            self.frames[s] += 1
            self.due[s] += 1.0 / SERVICES[s].frequency
        self.t += self.dt
        return out


class FakePM:
    """Collects what a daemon publishes."""

    def __init__(self):
        self.sent: dict[str, list] = {}

    def send(self, service: str, msg) -> None:
        self.sent.setdefault(service, []).append(messaging.log_from_bytes(msg.to_bytes()))

    def last(self, service: str):
        return self.sent[service][-1]
