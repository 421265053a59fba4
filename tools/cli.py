"""`roadpilot`: the command line. `roadpilot <command> --help` tells more about each command.

`roadpilot sim` runs the manager in sim mode (the simulator's bridge and the whole onboard stack) and
reports the drive from the simulator's ground truth. `roadpilot device` runs it on a real car (webcam + CAN
adapter, both checked at start). `roadpilot replay` plays a recorded route into the live services
(tools/replay/replay.py).
"""

import argparse
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter

from common.paths import check_data_dir, data_dir, prefix, routes_dir
from selfdrive.loggerd.logreader import LogError, LogReader
from selfdrive.loggerd.route_writer import ROUTE_ENV, new_route_dir
from selfdrive.manager import manager
from selfdrive.manager.process_config import MODES, PROCESSES
from selfdrive.ui.config import ui_url, with_free_port


def sim_stack_report() -> str:
    lines = ["Parts of the sim stack:"]
    width = max(len(p.name) for p in PROCESSES)
    lines += [f"  {p.name:<{width}}  {p.module}" for p in PROCESSES if p.runs_in("sim")]
    return "\n".join(lines)


def route_summary(route_path: str) -> str:
    """Message counts per service, read back from the files (not taken from loggerd's own counters)."""
    lines = [f"Recorded route: {route_path}"]
    lr = LogReader(route_path, sort_by_time=False)
    try:
        counts = Counter(ev.which() for ev in lr)
    except LogError as e:
        return "\n".join([*lines, f"  unreadable: {e}"])
    lines.append(f"  {sum(counts.values())} messages read back (rlog)")
    lines += [f"  {service:<20} {n:>7}" for service, n in sorted(counts.items())]
    lines += [f"  problem: {path}: {what}" for path, what in lr.problems]
    return "\n".join(lines)


def stop_manager(proc: subprocess.Popen, grace_s: float = 30.0) -> int:
    """Stops a manager child as Ctrl-C would (it stops its own children in waves), killing it after `grace_s`;
    returns its exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def run_sim(cfg, wall_limit: float, env: dict[str, str], log_path: str | None = None) -> tuple[int, object, float]:
    """The manager in sim mode as a child, until the drive's simulated minutes are done, `wall_limit` s
    pass, Ctrl-C, or the manager ends, with the live status line meanwhile. `log_path`: where the stack's log
    lines go instead of the terminal (they would break the status line). Returns (manager exit status, the
    score, wall seconds)."""
    from cereal import messaging
    from tools.sim.lib.live_status import LiveStatus
    from tools.sim.lib.score import SimScore
    score = SimScore()
    from selfdrive.car.car_identity import describe
    sock = messaging.sub_sock("simState")  # before the bridge starts: no message is missed
    cp_sock = messaging.sub_sock("carParams", conflate=True)
    car_said = False
    status = LiveStatus(cfg.minutes * 60)
    stop: list[int] = []
    old = signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    start = time.monotonic()
    log = open(log_path, "w") if log_path else None  # noqa: SIM115 - open for the manager's whole life
    proc = subprocess.Popen([sys.executable, "-m", "selfdrive.manager.manager", "sim"], env=env, stdout=log,
                            stderr=subprocess.STDOUT if log else None)
    # the bridge stops at the first 10 ms step past --minutes and sends a simState of that step (bridge.last_state)
    last_sim_t = cfg.minutes * 60
    try:
        while proc.poll() is None and not stop and time.monotonic() - start < wall_limit:
            if cfg.minutes and score.t >= last_sim_t - 1e-6:
                break
            if not car_said and (cp := cp_sock.receive(0)) is not None:
                status.say(describe(messaging.log_from_bytes(cp).carParams))
                car_said = True
            dat = sock.receive(100)
            if dat is not None:
                ss = messaging.log_from_bytes(dat).simState
                score.add(ss)
                status.update(time.monotonic(), ss.t, ss.vEgo)
    finally:
        status.close()
        signal.signal(signal.SIGINT, old)
        rc = stop_manager(proc)
        sock.close()
        cp_sock.close()
        if log is not None:
            log.close()
    return rc, score, time.monotonic() - start


def report_drive(route_path: str, record: str | None) -> str | None:
    """The drive's report from its route (printed, and report.json + report.png written into the route folder);
    with `record`, the route rendered to that mp4 (road camera with the model's path, lane lines and lead drawn
    over it: tools/render). Returns the report's text, None when the route cannot give one."""
    from tools.sim.lib.drive_report import DriveReport
    if record:
        from tools.render.render import Renderer
        t0 = time.monotonic()
        print(f"Rendering the drive to {record} (road camera + model overlays)...", flush=True)
        try:
            r = Renderer(route_path)
            r.render(record)
            video = "the road camera" if r.has_video else "no camera video in the route: overlays on a dark background"
            print(f"Recording {record}: {mp4_frames(record)}, {video} ({time.monotonic() - t0:.0f} s to render)")
        except (LogError, OSError, ValueError) as e:
            print(f"Recording {record}: not written: {e}")
    try:
        rep = DriveReport.from_route(route_path)
    except LogError as e:
        print(f"No drive report: {e}")
        return None
    try:
        json_path, png_path = rep.save(route_path)
        print(f"Report written next to the route: {json_path}, {png_path}")
    except (OSError, ValueError) as e:  # a full disk, or a value JSON cannot hold: the report is still printed
        print(f"Report not written next to the route: {e}")
    return rep.text()


def mp4_frames(path: str) -> str:
    try:
        import av
        with av.open(path) as c:
            st = c.streams.video[0]
            n = st.frames or sum(1 for _ in c.decode(st))  # the mp4 index has the count; else decode them all
            return f"{n} frames {st.codec_context.width}x{st.codec_context.height} ({st.codec_context.name})"
    except Exception as e:  # noqa: BLE001 - any reason the file cannot be read is what the user must see
        return f"unreadable: {e}"


def cmd_sim(args: argparse.Namespace) -> int:
    from tools.sim.bridge import forget_learned_steering, manager_env
    from tools.sim.lib.simulation import SimConfig, variant
    env = {**os.environ}
    try:
        runs = {p.name for p in PROCESSES if manager.config_from_env("sim", env).should_run(p)}
    except ValueError as e:
        print(f"roadpilot sim: {e}", file=sys.stderr)
        return 2
    stack = {"card", "controlsd"} <= runs  # what answers the car's CAN
    try:
        # --record is rendered from the route after the drive (tools/render), not by the bridge during it
        cfg = SimConfig(scenario=args.scenario, seed=args.seed, car=args.car, driver=args.driver,
                        use_cruise=args.use_cruise, lockstep=args.lockstep, minutes=args.minutes,
                        camera="camerad" in runs, stack_wait_s=20.0 if stack else 0.0, **variant(args))
    except ValueError as e:
        print(f"roadpilot sim: {e}", file=sys.stderr)
        return 2
    how = "lockstep (deterministic, paced by the stack)" if cfg.lockstep else "real time"
    record = os.path.abspath(args.record) if args.record else None
    rec = f"; rendering the drive to {record} afterwards" if record else ""
    print(f"roadpilot sim: scenario {cfg.scenario}, seed {cfg.seed}, car {cfg.car}{cfg.describe_variant()}, "
          f"{cfg.minutes:g} simulated "
          f"min, {how}; the scripted driver ({cfg.driver}) drives{rec}")
    print(sim_stack_report())
    if record and "loggerd" not in runs:
        print("--record renders the recorded route, but loggerd does not run: there will be nothing to render")
    if not stack:
        print("card and controlsd do not both run: nothing answers the car's CAN, the scripted driver drives alone")
    print(f"The simulated car is {cfg.car}; its ECUs answer firmware queries, and card identifies it from them "
          "(nothing is stored for later runs); torqued learns its steering from carParams' values on")
    env.update(manager_env(cfg))
    try:
        forget_learned_steering(cfg.car)
        env = with_free_port(env)
        route = new_route_dir(routes_dir())[0]  # this run's route: reported below, whatever else writes routes
    except (OSError, ValueError) as e:
        print(f"roadpilot sim: {e}", file=sys.stderr)
        return 2
    env[ROUTE_ENV] = route
    wall_limit = args.seconds if args.seconds is not None else cfg.minutes * 60 * 4 + 60
    print(f"Onroad UI: {ui_url(env)} (open it in a browser)")
    log_path = None
    if sys.stdout.isatty():  # the status line redraws in place: the stack's log lines go to a file instead
        os.makedirs(data_dir(), exist_ok=True)
        log_path = os.path.join(data_dir(), "sim.log")
        print(f"The stack's log: {log_path} (also in the route's logMessage)")
    print(f"Running the manager in sim mode (at most {wall_limit:g} s of wall time; Ctrl-C stops early).", flush=True)
    rc, score, wall = run_sim(cfg, wall_limit, env, log_path)
    print(f"Drive (ground truth from simState), {wall:.1f} s of wall time:")
    print("\n".join(score.lines()))
    if rc != 0:
        print(f"The manager exited with status {rc}." + (f" Its log: {log_path}" if log_path else ""))
        return rc
    route_path = os.path.join(routes_dir(), route)
    if not os.path.isdir(route_path) or not any(n.isdigit() for n in os.listdir(route_path)):
        print(f"No route was recorded in {route_path} (loggerd did not run or wrote nothing): no report, no --record.")
        report = None
    else:
        print(route_summary(route_path))
        report = report_drive(route_path, record)
    if report:
        print(report)
    return 0 if score.messages else 1


def cmd_manager(args: argparse.Namespace) -> int:
    return manager.main(args.mode)


def camera_model_env(args: argparse.Namespace) -> dict[str, str]:
    """What tells camerad the camera's intrinsics: a camera file (checked here), else a field of view, else nothing
    (camerad assumes one and says so). Raises ValueError with the reason."""
    from common.transformations.camera import CameraModel
    from common.transformations.camera_file import CameraFileError, load_camera_file
    if args.camera_params and args.fov is not None:
        raise ValueError("give --camera-params or --fov, not both")
    if args.camera_params:
        try:
            load_camera_file(args.camera_params)
        except CameraFileError as e:
            raise ValueError(str(e)) from None
        return {"ROADPILOT_CAMERA_PARAMS": os.path.abspath(args.camera_params), "ROADPILOT_CAMERA_FOV": ""}
    if args.fov is not None:
        CameraModel.from_fov(CameraModel.width, CameraModel.height, args.fov)  # its range
        return {"ROADPILOT_CAMERA_PARAMS": "", "ROADPILOT_CAMERA_FOV": f"{args.fov:g}"}
    return {"ROADPILOT_CAMERA_PARAMS": "", "ROADPILOT_CAMERA_FOV": ""}


def camera_model_text(env: dict[str, str]) -> str:
    if env.get("ROADPILOT_CAMERA_PARAMS"):
        return f"intrinsics from {env['ROADPILOT_CAMERA_PARAMS']}"
    if env.get("ROADPILOT_CAMERA_FOV"):
        return f"a {env['ROADPILOT_CAMERA_FOV']} deg horizontal field of view (no lens distortion)"
    from selfdrive.camerad.camerad import ASSUMED_FOV_DEG
    return (f"no camera file or --fov: a {ASSUMED_FOV_DEG:g} deg field of view is ASSUMED; the lines drawn and "
            f"driven on are only as right as that (`roadpilot calibrate-camera`)")


def device_env(args: argparse.Namespace, env: dict[str, str]) -> dict[str, str]:
    """The environment that points camerad and canbridged at this car's camera and CAN adapter. Both are
    opened once here first, so a missing camera or a bad adapter is a clear error now, not a daemon that
    the manager keeps restarting. Raises ValueError with the reason."""
    from hardware.can_backends import BackendError, open_backend
    from selfdrive.locationd.calibrationd import NOMINAL_SPEED_ENV
    if args.assume_speed is not None and not (args.video and 0 <= args.assume_speed <= 70):
        raise ValueError("--assume-speed is for a --video without a car: 0..70 m/s")
    if args.video:
        if not os.path.isfile(args.video):
            raise ValueError(f"video file not found: {args.video}")
        camera = {"ROADPILOT_CAMERA_SOURCE": "video", "ROADPILOT_CAMERA_VIDEO": os.path.abspath(args.video),
                  "ROADPILOT_CAMERA_LOOP": "1" if args.loop else "0",
                  NOMINAL_SPEED_ENV: "" if args.assume_speed is None else f"{args.assume_speed:g}"}
    else:
        if not os.path.exists(args.camera):
            raise ValueError(f"camera {args.camera} not found (is the webcam plugged in? `ls /dev/video*`)")
        camera = {"ROADPILOT_CAMERA_SOURCE": "webcam", "ROADPILOT_CAMERA_DEVICE": args.camera}
    camera |= camera_model_env(args)
    if args.can.partition(":")[0] == "sim":
        raise ValueError("--can sim is the simulator's car: use `roadpilot sim`")
    try:
        open_backend(args.can).close()
    except (BackendError, ImportError, OSError, ValueError) as e:  # python-can raises several kinds
        raise ValueError(f"CAN adapter {args.can!r} cannot be opened: {e}") from None
    return {**env, **camera, "ROADPILOT_CAN_BACKEND": args.can}


def cmd_device(args: argparse.Namespace) -> int:
    from selfdrive.car.card import FORCED_CAR_ENV
    from selfdrive.car.fingerprinting import known_platform
    if args.car and not known_platform(args.car):
        print(f"roadpilot device: unknown platform {args.car!r}; opendbc platforms look like TOYOTA_RAV4",
              file=sys.stderr)
        return 2
    try:
        env = device_env(args, dict(os.environ))
    except ValueError as e:
        print(f"roadpilot device: {e}", file=sys.stderr)
        return 2
    try:
        env = with_free_port(env)
    except ValueError as e:
        print(f"roadpilot device: {e}", file=sys.stderr)
        return 2
    os.environ.update(env)  # the manager passes its environment to every child
    if args.car:
        os.environ[FORCED_CAR_ENV] = args.car  # this run only: nothing is stored for the next one
    else:
        os.environ.pop(FORCED_CAR_ENV, None)
    how = (f"car forced to {args.car} for this run (nothing is sent until its bus agrees)" if args.car else
           "car identified by firmware query, then CAN fingerprint (not recognised: dashcam mode, nothing sent)")
    print(f"roadpilot device: camera {env.get('ROADPILOT_CAMERA_DEVICE') or env['ROADPILOT_CAMERA_VIDEO']}, "
          f"CAN {args.can}; {how}")
    print(f"camera model: {camera_model_text(env)}")
    print(f"Onroad UI: {ui_url(env)} (open it in a browser). Ctrl-C stops.", flush=True)
    return manager.main("device")


def cmd_replay(args: argparse.Namespace) -> int:
    from tools.replay import replay
    return replay.main(list(args.args))


def cmd_calibrate_camera(args: argparse.Namespace) -> int:
    from tools.camera import calibrate
    return calibrate.main(list(args.args))


def cmd_eval(args: argparse.Namespace) -> int:
    from tools.sim import eval as sim_eval
    return sim_eval.main(list(args.args))


# their own options and --help
PASS_THROUGH = {"replay": cmd_replay, "calibrate-camera": cmd_calibrate_camera, "eval": cmd_eval}


DESCRIPTION = "roadpilot: an onboard driving assistant (adaptive cruise + lane centering) for Linux computers."
EPILOG = """environment:
  ROADPILOT_PREFIX  isolates one run: its sockets (/tmp/rp-<prefix>/), its params (<data>/params-<prefix>), its
                    route and its UI port (the first free one from 8880 unless ROADPILOT_UI_PORT is set), so
                    two stacks can run side by side on one data folder
  ROADPILOT_DATA    where params and recorded routes live (default ~/.roadpilot)
  BLOCK=a,b         processes the manager never starts
  ONLY=a,b          the only processes the manager starts

`roadpilot <command> --help` tells more about each command."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="roadpilot", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="<command>")

    from tools.sim.lib.scenarios import SCENARIOS
    from tools.sim.lib.sim_car import DEFAULT_PLATFORM, SIM_PLATFORMS
    from tools.sim.lib.simulation import add_camera_args, add_steer_args
    sim = sub.add_parser("sim", help="drive a simulated scenario with the sim stack, headless; score it",
                         description="Runs the manager in sim mode (the simulator's bridge and the whole onboard "
                                     "stack) until --minutes of simulated driving are done, with a status line "
                                     "meanwhile, then prints the drive's report (from the recorded route and the "
                                     "simulator's ground truth) and writes report.json and report.png next to the "
                                     "route.")
    sim.add_argument("--scenario", choices=list(SCENARIOS), default="mixed",
                     help="what to drive (default: mixed, a bit of everything)")
    sim.add_argument("--seed", type=int, default=0, help="the world's seed: same scenario + seed, same world")
    sim.add_argument("--minutes", type=float, default=3.0, help="simulated minutes (default: 3)")
    sim.add_argument("--car", choices=list(SIM_PLATFORMS), default=DEFAULT_PLATFORM,
                     help=f"the simulated car (default: {DEFAULT_PLATFORM}, whose cruise works down to a stop; "
                          "TOYOTA_RAV4's cannot engage below 19 mph); card identifies it by firmware query")
    sim.add_argument("--lockstep", action="store_true",
                     help="deterministic: each 10 ms step waits for the stack's answer (see tools/sim/bridge.py)")
    sim.add_argument("--record", metavar="OUT.mp4", default=None,
                     help="after the drive, render the road camera with the model's path, lane lines and lead drawn "
                          "over it to this mp4 (from the recorded route)")
    sim.add_argument("--driver", choices=("manual", "supervise"), default="supervise",
                     help="supervise (default): the scripted driver engages the cruise with its buttons and lets the "
                          "stack drive, taking over when needed; manual: it drives by hand")
    sim.add_argument("--use-cruise", action="store_true", help="a manual driver that also turns the cruise on")
    add_steer_args(sim)
    add_camera_args(sim)
    sim.add_argument("--seconds", type=float, default=None,
                     help="wall-clock limit (default: 4x the simulated time + 60 s)")
    sim.set_defaults(func=cmd_sim)

    mgr = sub.add_parser("manager", help="run the manager until Ctrl-C",
                         description="Runs every process of the mode that exists, restarting crashed ones, "
                                     "until SIGINT/SIGTERM. BLOCK=a,b and ONLY=a,b in the environment "
                                     "exclude or select processes.")
    mgr.add_argument("--mode", choices=MODES, default="sim", help="which process set to run (default: sim)")
    mgr.set_defaults(func=cmd_manager)

    rp = sub.add_parser("replay", help="play a recorded route into the live services (--stack: drive it live)",
                        add_help=False)  # its own options and --help are tools/replay/replay.py's
    rp.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    rp.set_defaults(func=cmd_replay)

    cal = sub.add_parser("calibrate-camera", add_help=False,
                         help="a camera file (intrinsics, lens distortion) from chessboard photos or a live webcam")
    cal.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    cal.set_defaults(func=cmd_calibrate_camera)

    ev = sub.add_parser("eval", add_help=False, help="many simulated drives (scenarios x seeds x cars, local workers "
                        "or Ray) and one report: km, interventions per 100 km by cause, incidents")
    ev.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    ev.set_defaults(func=cmd_eval)

    dev = sub.add_parser("device", help="drive a real car: webcam + CAN adapter",
                         description="Runs the manager in device mode: camerad on the webcam, canbridged on the "
                                     "CAN adapter (every frame sent passes the C safety layer), card, modeld, "
                                     "calibrationd, plannerd, controlsd, selfdrived, loggerd, encoderd and the UI, "
                                     "until Ctrl-C. The camera and the adapter are opened once first: a missing "
                                     "one is an error at start.")
    dev.add_argument("--camera", default="/dev/video0", help="webcam device (default /dev/video0)")
    dev.add_argument("--video", default=None, metavar="FILE",
                     help="a dash-cam video as the camera instead of the webcam (bench testing on a desk)")
    dev.add_argument("--loop", action="store_true", help="--video: play it again from the start at its end")
    dev.add_argument("--assume-speed", type=float, default=None, metavar="M/S",
                     help="--video without a car on the adapter: calibrate as if driving at this speed (default: the "
                          "speed the driving model sees)")
    dev.add_argument("--camera-params", metavar="FILE", default=None,
                     help="the camera's intrinsics and lens distortion (from `roadpilot calibrate-camera`)")
    dev.add_argument("--fov", type=float, default=None, metavar="DEG",
                     help="without a camera file: the camera's horizontal field of view in degrees (else 65.2 is "
                          "assumed, and said)")
    dev.add_argument("--can", required=True, metavar="URL",
                     help="the CAN adapter as a python-can URL: socketcan:can0, pcan:PCAN_USBBUS1, "
                          "slcan:/dev/ttyACM0?bitrate=500000, gs_usb:0, ... (hardware/can_backends.py)")
    dev.add_argument("--car", default=None,
                     help="force the platform for this run (e.g. TOYOTA_RAV4) instead of identifying it; nothing is "
                          "sent until the bus carries what that platform needs")
    dev.set_defaults(func=cmd_device)

    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in PASS_THROUGH:  # everything after it is the command's, --help included
        return PASS_THROUGH[argv[0]](argparse.Namespace(args=argv[1:]))
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        prefix()
        ui_url()  # a bad ROADPILOT_UI_PORT
    except ValueError as e:
        print(f"roadpilot: {e}", file=sys.stderr)
        return 2
    if why := check_data_dir():
        print(f"roadpilot: {why}", file=sys.stderr)
        return 2
    if args.command == "sim":
        bad = ("--seconds must be positive" if args.seconds is not None and not args.seconds > 0 else
               "--minutes must be at least one simulated second (1/60)"
               if not (math.isfinite(args.minutes) and args.minutes * 60 >= 1.0) else None)
        if bad:
            print(f"roadpilot sim: {bad}", file=sys.stderr)
            return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
