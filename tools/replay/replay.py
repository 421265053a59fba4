"""Route replay: plays a recorded route into the live services, at its recorded pace.

    roadpilot replay ROUTE [--speed 2] [--start 30] [--allow a,b | --block a,b] [--loop] [--stack]
    python -m tools.replay.replay ROUTE ...

Every message goes out on its service with logMonoTime set to the moment it is sent, so the live
daemons' freshness and rate checks hold. Road frames go out through VisionIPC when the route has
video (encoderd's road.mp4 + roadEncodeIdx): each roadCameraState is preceded by its decoded frame.
Damaged segments are reported (LogReader's findings) and what can be read still plays.

Keys (on a terminal): space pause/resume, left/right (or h/l) -10/+10 s, e/d/a next engagement /
disengagement / alert, +/- speed x2 / /2 (0.1 to 10), q quit. Without a terminal, standard input takes
one command per line: pause, resume, seek T, seek +S, seek -S, next engage|disengage|alert, speed X,
status, quit. A status line shows time, speed, engagement and the alert.

--stack also runs the manager in replay mode, so the onboard daemons drive live on top of the route; the
services those daemons publish are then not replayed (they come from the new code). card runs as the route's car
(--car, else route.json's `car` as the importers write it, else its carParams; none: card identifies it). Playback
waits until every stack process that reads `can` (card, loggerd) has subscribed to it, so card's carState answers
the route from its first frame (the daemons that wait for the car, controlsd and the rest, join once card names it).
"""

import argparse
import bisect
import math
import os
import select
import shlex
import subprocess
import sys
import termios
import time
import tty
from dataclasses import dataclass

from cereal import messaging
from cereal.services import SERVICES
from common.swaglog import cloudlog, cloudlog_bind
from selfdrive.loggerd.logreader import LogError, LogReader, ToolArgumentParser, finite_float
from selfdrive.loggerd.route import RouteError, route_of

MIN_SPEED, MAX_SPEED = 0.1, 10.0
SEEK_STEP_S = 10.0
STATUS_PERIOD_S = 0.2
FRAME_LATE_S = 0.1           # a frame due longer ago than this is skipped, not decoded (fast playback)
ENV_ARGS = "ROADPILOT_REPLAY_ARGS"  # the manager's replay process takes its arguments from here
STACK_WAIT_S = 60.0          # --stack: how long the readers of `can` may take to subscribe before playing anyway


@dataclass(frozen=True)
class Mark:
    t: int        # recorded ns
    kind: str     # "engage", "disengage", "alert"
    what: str


def marks_of(events: list) -> list[Mark]:
    """Engagements, disengagements and new alerts, from selfdriveState."""
    out, enabled, alert = [], False, ""
    for ev in events:
        if ev.which() != "selfdriveState":
            continue
        sd = ev.selfdriveState
        if sd.enabled != enabled:
            out.append(Mark(ev.logMonoTime, "engage" if sd.enabled else "disengage", str(sd.state)))
            enabled = sd.enabled
        if sd.alertType != alert:
            if sd.alertType:
                out.append(Mark(ev.logMonoTime, "alert", sd.alertType))
            alert = sd.alertType
    return out


class Frames:
    """The route's road frames by frameId, served on VisionIPC (the server is made at the first frame)."""

    def __init__(self, route_path: str, events: list):
        from tools.lib.framereader import frame_locations
        self.route_path = route_path
        self.index = frame_locations(events)
        self.readers: dict = {}
        self.server = None
        self.sent = self.skipped = self.missing = 0

    def send(self, frame_id: int, sof: int, eof: int, late_s: float) -> None:
        from tools.lib.framereader import FrameReader
        loc = self.index.get(frame_id)
        if loc is None:
            self.missing += 1
            return
        if late_s > FRAME_LATE_S:
            self.skipped += 1
            return
        reader = self.readers.get(loc.path) or self.readers.setdefault(
            loc.path, FrameReader(os.path.join(self.route_path, loc.path)))
        try:
            nv12 = reader.get(loc.position)
        except (IndexError, OSError, ValueError) as e:  # a cut or damaged video: the messages still play
            self.missing += 1
            cloudlog.warning("replay: frame unreadable", extra={"frame": frame_id, "error": str(e)[:200]})
            return
        if self.server is None:
            from cereal.visionipc import VisionIpcServer, VisionStreamType
            self.server = VisionIpcServer(VisionStreamType.ROAD, nv12.shape[1], nv12.shape[0] * 2 // 3)
        self.server.send(nv12, frame_id, sof, eof)
        self.sent += 1


def route_car(route: str, events: list) -> str | None:
    """The car a route was driven with: route.json's `car` (the importers write it), else its first carParams;
    None when it says neither. RouteError for an unreadable route.json."""
    r = route_of(route)
    car = (r.read_meta() if r is not None else {}).get("car")
    if car:
        return str(car)
    cp = next((ev.carParams for ev in events if ev.which() == "carParams"), None)
    return (cp.carFingerprint or None) if cp is not None and not cp.dashcamOnly else None


class Replay:
    def __init__(self, route: str, speed: float = 1.0, allow: set[str] | None = None, block: set[str] = frozenset(),
                 loop: bool = False, frames: bool = True, clock=time.monotonic, watch: tuple[str, ...] = ()):
        lr = LogReader(route)
        events = list(lr)
        self.problems = lr.problems
        if not events:
            raise LogError(f"{route}: nothing to replay")
        self.marks = marks_of(events)
        self.car = route_car(route, events)
        present = {ev.which() for ev in events}
        self.services = sorted((present if allow is None else present & allow) - set(block))
        keep = set(self.services)
        self.msgs = [ev for ev in events if ev.which() in keep]
        self.times = [ev.logMonoTime for ev in self.msgs]
        self.t0, self.t_end = events[0].logMonoTime, events[-1].logMonoTime
        route_path = os.path.dirname(os.path.dirname(os.path.abspath(lr.files[0])))
        self.frames = Frames(route_path, events) if frames and "roadCameraState" in keep else None
        self.pm = messaging.PubMaster(self.services, watch=[s for s in watch if s in keep])
        self.clock, self.loop, self.speed = clock, loop, 1.0
        self.paused, self.done, self.sent, self.laps = False, False, 0, 0
        self.enabled, self.alert = False, ""
        self._anchor(self.t0)
        self.set_speed(speed)

    # -- the playback clock: recorded time = anchor + (now - anchor_real) * speed, frozen while paused
    def _anchor(self, rec_ns: int) -> None:
        self.anchor_rec, self.anchor_real = rec_ns, self.clock()
        self.i = bisect.bisect_left(self.times, rec_ns)

    def position(self) -> int:
        if self.paused:
            return self.anchor_rec
        return self.anchor_rec + int((self.clock() - self.anchor_real) * self.speed * 1e9)

    def set_speed(self, speed: float) -> None:
        if math.isnan(speed):
            raise ValueError("speed must be a number")
        pos = self.position()
        self.speed = min(MAX_SPEED, max(MIN_SPEED, speed))
        self.anchor_rec, self.anchor_real = pos, self.clock()

    def toggle_pause(self) -> None:
        self.set_pause(not self.paused)

    def set_pause(self, paused: bool) -> None:
        pos = self.position()
        self.paused = paused
        self.anchor_rec, self.anchor_real = pos, self.clock()

    def seek(self, seconds: float, relative: bool = False) -> None:
        """To `seconds` into the route (from now when `relative`), held to its start and end. ValueError for nan/inf:
        a typed `seek +inf` is an error line, not the end of the replay."""
        if not math.isfinite(seconds):
            raise ValueError(f"seek needs a finite number of seconds, got {seconds}")
        base = self.position() if relative else self.t0
        self._anchor(min(self.t_end, max(self.t0, base + int(seconds * 1e9))))
        self.done = False

    def seek_next(self, kind: str) -> bool:
        """To the next engagement / disengagement / alert after now; False (and no move) when there is none."""
        pos = self.position()
        for m in self.marks:
            if m.kind == kind and m.t > pos:
                self._anchor(m.t)
                return True
        return False

    def step(self) -> float:
        """Sends what is due; returns seconds (real) until the next message is due."""
        pos = self.position()
        while self.i < len(self.msgs) and self.times[self.i] <= pos:
            self._send(self.msgs[self.i], (pos - self.times[self.i]) * 1e-9 / self.speed)
            self.i += 1
        if self.i >= len(self.msgs):
            if self.loop:
                self.laps += 1
                self._anchor(self.t0)
                return 0.0
            self.done = True
            return 1.0
        return 1.0 if self.paused else (self.times[self.i] - pos) * 1e-9 / self.speed

    def _send(self, ev, late_s: float) -> None:
        service = ev.which()
        msg = ev.as_builder()
        msg.logMonoTime = time.monotonic_ns()
        if service == "roadCameraState" and self.frames is not None:
            f = ev.roadCameraState
            self.frames.send(f.frameId, f.timestampSof, f.timestampEof, late_s)
        elif service == "selfdriveState":
            self.enabled, self.alert = ev.selfdriveState.enabled, ev.selfdriveState.alertType
        self.pm.send(service, msg)
        self.sent += 1

    def status(self) -> str:
        t, total = (self.position() - self.t0) * 1e-9, (self.t_end - self.t0) * 1e-9
        state = "paused" if self.paused else ("ended" if self.done else "playing")
        frames = f"  frames {self.frames.sent}" if self.frames is not None else ""
        return (f"{state:>7} {t:7.2f} / {total:.2f} s  {self.speed:g}x  {'ENGAGED' if self.enabled else 'disengaged'}"
                f"  alert: {self.alert or '-'}  sent {self.sent}{frames}")

    def command(self, line: str) -> bool:
        """One text command (see the module doc); False for quit. Unknown commands raise ValueError."""
        words = line.split()
        if not words:
            return True
        cmd, args = words[0], words[1:]
        if cmd == "quit":
            return False
        if cmd in ("pause", "resume"):
            self.set_pause(cmd == "pause")
        elif cmd == "seek" and len(args) == 1:
            a = args[0]
            self.seek(float(a), relative=a[0] in "+-")
        elif cmd == "next" and len(args) == 1 and args[0] in ("engage", "disengage", "alert"):
            if not self.seek_next(args[0]):
                print(f"no {args[0]} after {(self.position() - self.t0) * 1e-9:.2f} s", flush=True)
        elif cmd == "speed" and len(args) == 1:
            self.set_speed(float(args[0]))
        elif cmd != "status":
            raise ValueError(f"unknown command {line.strip()!r}")
        print(self.status(), flush=True)
        return True


KEYS = {" ": "pause-toggle", "\x1b[C": "seek +10", "l": "seek +10", "\x1b[D": "seek -10", "h": "seek -10",
        "e": "next engage", "d": "next disengage", "a": "next alert", "+": "speed-up", "-": "speed-down", "q": "quit"}


def key_command(r: Replay, key: str) -> bool:
    action = KEYS.get(key)
    if action == "pause-toggle":
        r.toggle_pause()
        return True
    if action in ("speed-up", "speed-down"):
        r.set_speed(r.speed * (2.0 if action == "speed-up" else 0.5))
        return True
    return True if action is None else r.command(action)


def play(r: Replay, interactive: bool, exit_at_end: bool) -> None:
    """The loop: messages when due, keys or command lines as they come, the status line."""
    fd, last_status = sys.stdin.fileno(), 0.0
    stdin_open = True
    while True:
        wait = max(0.0, min(r.step(), STATUS_PERIOD_S))
        if r.done and exit_at_end:
            print(r.status(), flush=True)
            return
        ready = select.select([fd], [], [], wait)[0] if stdin_open else (time.sleep(wait) or [])
        if ready:
            data = os.read(fd, 64).decode(errors="replace")
            if not data:
                stdin_open = False  # end of the command stream: keep playing
            elif interactive:
                if not key_command(r, data if data.startswith("\x1b") else data[:1]):
                    return
            else:
                for line in data.splitlines():
                    try:
                        if not r.command(line):
                            return
                    except ValueError as e:
                        print(f"replay: {e}", flush=True)
        if interactive and time.monotonic() - last_status >= STATUS_PERIOD_S:
            sys.stderr.write("\r\x1b[K" + r.status())
            sys.stderr.flush()
            last_status = time.monotonic()


def stack_outputs(mode: str = "replay") -> set[str]:
    """Services the manager and the processes it runs in `mode` publish (their modules' PUBLISHES)."""
    import importlib

    from selfdrive.manager import manager
    from selfdrive.manager.process_config import PROCESSES
    out = set(manager.PUBLISHES)
    for p in PROCESSES:
        if p.name != "replay" and p.runs_in(mode):
            out |= set(importlib.import_module(p.module).PUBLISHES)
    return out


def stack_readers(service: str, env: dict[str, str], mode: str = "replay") -> list[str]:
    """The processes the manager runs in `mode` (BLOCK/ONLY from `env`) that subscribe to `service`: those whose
    module declares it (SUBSCRIBES) and loggerd, which records every logged service."""
    import importlib

    from selfdrive.loggerd.loggerd import logged_services
    from selfdrive.manager.manager import config_from_env
    from selfdrive.manager.process_config import PROCESSES
    cfg = config_from_env(mode, env)
    out = []
    for p in PROCESSES:
        if p.name == "replay" or not cfg.should_run(p):
            continue
        if p.name == "loggerd":  # it declares nothing: it subscribes to what the services table says is logged
            reads = logged_services()
        else:
            mod = importlib.import_module(p.module)
            reads = getattr(mod, "SUBSCRIBES", ())
        if service in reads:
            out.append(p.name)
    return out


def wait_for_readers(r: Replay, readers: list[str], manager: subprocess.Popen, service: str = "can") -> str | None:
    """Holds playback until `service` has a subscriber per reader (a PUB drops what it sends before a SUB joined:
    the stack would lose the drive's start). None when they are there; else why playback starts without them."""
    sock, deadline = r.pm.sock[service], time.monotonic() + STACK_WAIT_S
    while sock.subscribers() < len(readers):
        if manager.poll() is not None:
            return f"the manager exited with status {manager.returncode}"
        if time.monotonic() > deadline:
            return f"{sock.subscribers()} of {len(readers)} readers of {service} subscribed after {STACK_WAIT_S:g} s"
        time.sleep(0.01)
    return None


def services_arg(s: str) -> set[str]:
    names = {x for x in s.split(",") if x}
    bad = sorted(names - set(SERVICES))
    if bad:
        raise argparse.ArgumentTypeError(f"unknown service(s) {bad}; services are listed in cereal/services.py")
    return names


def speed_arg(s: str) -> float:
    v = float(s)
    if not MIN_SPEED <= v <= MAX_SPEED:
        raise argparse.ArgumentTypeError(f"speed must be {MIN_SPEED} to {MAX_SPEED}, got {v}")
    return v


def build_parser() -> argparse.ArgumentParser:
    ap = ToolArgumentParser(prog="roadpilot replay", description=__doc__.splitlines()[0],
                            epilog="keys: space pause, left/right -/+10 s, e/d/a next engage/disengage/alert, "
                                   "+/- speed, q quit", formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("route", help="route name, name/segments (e.g. name/2:4), folder or log file")
    ap.add_argument("--speed", type=speed_arg, default=1.0, help="playback speed, 0.1 to 10 (default 1)")
    ap.add_argument("--start", type=finite_float, default=0.0, help="start this many seconds into the route")
    ap.add_argument("--allow", type=services_arg, default=None, help="replay only these services (a,b,c)")
    ap.add_argument("--block", type=services_arg, default=set(), help="never replay these services")
    ap.add_argument("--loop", action="store_true", help="start over at the end")
    ap.add_argument("--no-frames", action="store_true", help="do not serve the route's video on VisionIPC")
    ap.add_argument("--stack", action="store_true", help="run the onboard stack (manager replay mode) on top")
    ap.add_argument("--car", default=None, metavar="PLATFORM",
                    help="--stack: the car card runs as, e.g. TOYOTA_RAV4 (default: route.json's car, else the "
                         "route's carParams, else card identifies it)")
    ap.add_argument("--exit-at-end", action="store_true", help="end when the route ends (default without a terminal)")
    return ap


def main(argv: list[str] | None = None) -> int:
    cloudlog_bind(name="replay")
    if argv is None:
        argv = shlex.split(os.environ[ENV_ARGS]) if ENV_ARGS in os.environ else sys.argv[1:]
    args = build_parser().parse_args(argv)
    from selfdrive.car.card import FORCED_CAR_ENV
    from selfdrive.car.fingerprinting import known_platform
    if args.car is not None and not known_platform(args.car):
        print(f"replay: unknown platform {args.car!r}; opendbc platforms look like TOYOTA_RAV4", file=sys.stderr)
        return 2
    interactive = sys.stdin.isatty()
    block = set(args.block) | (stack_outputs() if args.stack else set())
    stack_env = {**os.environ, "BLOCK": ",".join(filter(None, [os.environ.get("BLOCK"), "replay"]))}
    try:
        readers = stack_readers("can", stack_env) if args.stack else []
        r = Replay(args.route, args.speed, args.allow, block, args.loop, not args.no_frames, watch=("can",))
    except (LogError, RouteError) as e:
        print(f"replay: {e}", file=sys.stderr)
        return 1
    except ValueError as e:  # a BLOCK/ONLY name that is no process
        print(f"replay: {e}", file=sys.stderr)
        return 2
    car = args.car or r.car
    if car is not None and not known_platform(car):
        print(f"replay: the route names an unknown platform {car!r}; give one with --car", file=sys.stderr)
        return 2
    for path, what in r.problems:
        print(f"replay: skipped damage in {path}: {what}", file=sys.stderr)
    print(f"replaying {args.route}: {len(r.msgs)} messages of {len(r.services)} services over "
          f"{(r.t_end - r.t0) * 1e-9:.1f} s ({', '.join(r.services)})", flush=True)
    manager = None
    if args.stack:  # the manager's own replay row is blocked: this process is the replay
        if car is not None:
            stack_env[FORCED_CAR_ENV] = car  # card's --car, for this run only
        print(f"stack: car {car or 'identified by card'}; playback starts once {', '.join(readers) or 'nothing'} "
              "subscribed to can", flush=True)
        manager = subprocess.Popen([sys.executable, "-m", "selfdrive.manager.manager", "replay"], env=stack_env)
        if "can" in r.services and (why := wait_for_readers(r, readers, manager)):
            print(f"replay: playing without the whole stack: {why}", file=sys.stderr, flush=True)
    r.seek(args.start)
    old = termios.tcgetattr(sys.stdin.fileno()) if interactive else None
    try:
        if interactive:
            tty.setcbreak(sys.stdin.fileno())
        play(r, interactive, args.exit_at_end or not interactive and not args.loop)
    except KeyboardInterrupt:
        pass
    finally:
        if old is not None:
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, old)
            sys.stderr.write("\n")
        if manager is not None:
            manager.send_signal(2)
            try:
                manager.wait(30)
            except subprocess.TimeoutExpired:
                manager.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
