"""DriveReport on small routes written here with known values: a real-time one (every message on the
machine's clock) and the same drive as lockstep writes it (simState on a bus clock running 3x faster)."""

import json
import math
import os

import pytest

from cereal import messaging
from selfdrive.loggerd.route_writer import FrameWriter
from tools.lib.make_route import write_route
from tools.sim.lib.drive_report import DriveReport

T0 = 1_000_000_000_000
DT = 0.05
CHATTER = 0.05   # amplitude of the steering command's 5 Hz chatter, of full torque


def engaged_at(t: float) -> bool:
    return 4 < t <= 14 or 15 < t <= 17 or 17.5 < t <= 20


def accel(t: float) -> float:
    if 2.5 <= t < 3.0:
        return -1.0                   # a pulse while the driver drives: 4 m/s^3 after the 0.25 s average
    return min(max(t - 10.0, 0.0), 1.0)  # a 1 m/s^3 ramp while engaged


def sim_state(t: float, leads: bool = True):
    msg = messaging.new_message("simState")
    ss = msg.simState
    ss.t, ss.scenario, ss.seed = t, "synthetic", 7
    ss.vEgo, ss.aEgo, ss.laneIndex = 20.0, accel(t), 1
    ss.laneCenterOffset = 0.1 if t < 15 else -0.3
    ss.steeringAngleDeg = 2.0 + 5.0 * min(max(t - 10.0, 0.0), 2.0)   # 5 deg/s for 2 s, engaged
    ss.yawRate = 0.05 * min(max(t - 10.0, 0.0), 1.0)   # at 20 m/s: lateral acceleration up 1 m/s^2 in 1 s, engaged
    found = []
    if leads and 1 <= t <= 2:
        found.append((10.0, True))     # 0.5 s gap while not engaged
    if leads and 5 <= t <= 8:
        found += [(30.0, True), (5.0, False)]  # 1.5 s in our lane; the close one is in the next lane
    ls = ss.init("leads", len(found))
    for ld, (d, same) in zip(ls, found, strict=True):
        ld.dRel, ld.vLead, ld.sameLane = d, 18.0, same
    ss.collision = 12.0 <= t <= 12.2
    ss.laneDeparture = 16.0 <= t <= 16.5 or 18.0 <= t <= 18.1
    # the supervising driver took over for drifting just before the brake disengaged us at 14.0 s, and once more
    # at 15.5 s, too early to explain the disengagement at 17.0 s
    takeovers = [(13.99, "drifting: +0.10 m off the lane centre"), (15.5, "x")]
    done = [x for x in takeovers if x[0] <= t]
    ss.takeovers = len(done)
    if done:
        ss.lastTakeoverT, ss.lastTakeover = done[-1]
    return msg


def selfdrive_state(t: float):
    msg = messaging.new_message("selfdriveState")
    sd = msg.selfdriveState
    sd.enabled = engaged_at(t)
    sd.state = "overriding" if 8 < t <= 9 else ("enabled" if sd.enabled else "disabled")
    if t < 2:
        sd.alertType, sd.alertText1, sd.alertText2 = "calibrationIncomplete/permanent", "Calibration in Progress", ""
    elif 4 < t <= 4.1:
        sd.alertType = "cruiseEngaged/enable"  # no text: a sound only, not an alert shown
    elif 17 < t <= 17.5:
        sd.alertType, sd.alertText1, sd.alertText2 = ("canError/immediateDisable", "TAKE CONTROL IMMEDIATELY",
                                                      "CAN Error: Check Connections")
    return msg


def onroad_events(names: list[tuple[str, list[str]]]):
    msg = messaging.new_message("onroadEvents", len(names))
    for e, (name, flags) in zip(msg.onroadEvents, names, strict=True):
        e.name = name
        for f in flags:
            setattr(e, f, True)
    return msg




def manager_state(cpu: dict[str, float]):
    msg = messaging.new_message("managerState")
    ps = msg.managerState.init("processes", len(cpu) + 1)
    for p, (name, pct) in zip(ps, [*cpu.items(), ("replay", 0.0)], strict=True):
        p.name, p.cpuPercent, p.running = name, pct, name != "replay"
    return msg


def drive(leads: bool = True, engage: bool = True) -> list[tuple[int, object]]:
    """(machine time in s from T0, message) of a 20 s drive."""
    out = []
    for k in range(1, 401):
        t = round(k * DT, 2)
        out.append((t, sim_state(t, leads)))
        cam = messaging.new_message("roadCameraState")
        cam.roadCameraState.frameId = k - 1
        out.append((t + 0.001, cam))
        if k - 1 <= 395 and k - 1 not in (100, 101, 102):   # 3 frames missed; the last 4 still in flight
            md = messaging.new_message("modelV2")
            md.modelV2.frameId = k - 1
            md.modelV2.framesDropped = 3 if k - 1 > 102 else 0
            md.modelV2.frameDropPerc = 5.0 if 103 <= k - 1 < 140 else 0.0
            out.append((t + 0.003, md))
    if engage:
        for k in range(0, 2001):
            t = round(k * 0.01, 2)
            out.append((t + 0.002, selfdrive_state(t)))
            cc = messaging.new_message("carControl")   # steering for the road at 0.2 Hz, chatter at 5 Hz
            cc.carControl.latActive = engaged_at(t)
            cc.carControl.actuators.torque = 0.3 * math.sin(0.4 * math.pi * t) + CHATTER * math.sin(10 * math.pi * t)
            out.append((t + 0.0025, cc))
            cs = messaging.new_message("carState")
            cs.carState.cruiseState.enabled = engaged_at(t)
            cs.carState.cruiseState.speed = 25.0
            out.append((t + 0.0015, cs))
        cp = messaging.new_message("carParams")
        cp.carParams.carFingerprint = "LEXUS_CTH"
        out.append((0.5, cp))
        out.append((14.012, onroad_events([("brakePressed", ["userDisable", "noEntry"])])))
        out.append((17.012, onroad_events([("canError", ["immediateDisable", "noEntry"])])))
        out.append((8.012, onroad_events([("steerOverride", ["overrideLateral"])])))
    out.append((-1.0, manager_state({"modeld": 100.0, "bridge": 100.0})))  # before the drive: not counted
    for k in range(1, 40):
        out.append((k * 0.5 + 0.004, manager_state({"modeld": 40.0, "bridge": 30.0})))
    return sorted(out, key=lambda x: x[0])


def realtime_route(name: str, root: str | None = None, **kw) -> str:
    return write_route(on_the_machines_clock(drive(**kw)), name, root=root)


def on_the_machines_clock(timed) -> list:
    """The messages stamped as the machine's clock would: never on an exact 10 ms grid, never backwards."""
    msgs, last = [], 0
    for k, (t, msg) in enumerate(timed):
        msg.logMonoTime = last = max(last + 1, T0 + round(t * 1e9) + k % 7 * 1000)
        msgs.append(msg)
    return msgs


def lockstep_route(tmp_path) -> str:
    """As loggerd writes a lockstep drive: in arrival order, daemons on the machine's clock (3x slower than the
    simulated time here), simState stamped with the bridge's bus clock (= simulated time)."""
    path = tmp_path / "lockstep"
    os.makedirs(path / "0")
    w = FrameWriter(str(path / "0" / "rlog.zst"))
    for t, msg in drive():
        msg.logMonoTime = T0 + round(t * 1e9) if msg.which() == "simState" else T0 + round(t / 3 * 1e9)
        w.add(msg.to_bytes())
    w.close()
    return str(path)


EXPECTED = {
    "minutes": 20 / 60, "engaged_minutes": 14.5 / 60, "engaged_fraction": 14.5 / 16, "first_engaged_t": 4.05,
    "engagements": 3, "lane_departures": 2, "lane_departure_times": [16.0, 18.0], "collisions": 1,
    "collision_times": [12.0], "lat_err_mean_m": (200 * 0.1 + 90 * 0.3) / 290, "lat_err_p95_m": 0.3,
    "min_time_gap_s": 1.5, "min_time_gap_all_s": 0.5, "max_jerk": 1.0, "max_jerk_all": 4.0,
    "alerts": {"calibrationIncomplete/permanent": 1, "canError/immediateDisable": 1},
    "overrides": {"steerOverride": 1}, "cpu_cores": {"modeld": 0.4, "bridge": 0.3}, "cpu_total_cores": 0.7,
    "missed_model_frames": 3, "camera_frames": 396, "modeld_frames_dropped": 3, "modeld_max_drop_perc": 5.0,
}


@pytest.fixture(scope="module")
def route(tmp_path_factory) -> str:
    return realtime_route("known", root=str(tmp_path_factory.mktemp("routes")))  # written once for the module


class TestKnownDrive:
    def check(self, r: DriveReport) -> None:
        d = r.to_dict()
        for key, want in EXPECTED.items():
            # jerk comes out of a moving average and a central difference: exact only in the ramp's middle
            tol = 0.05 if key.startswith("max_jerk") else 1e-6
            assert d[key] == (pytest.approx(want, abs=tol) if isinstance(want, float | list | dict) else want), key
        assert [(x.t, x.reason, x.kind) for x in r.disengagements] == [(14.0, "brakePressed", "userDisable"),
                                                                       (17.0, "canError", "immediateDisable")]
        assert r.disengagements[1].alert == "TAKE CONTROL IMMEDIATELY / CAN Error: Check Connections"
        assert [x.driver for x in r.disengagements] == ["drifting: +0.10 m off the lane centre", ""]
        assert (r.scenario, r.seed, r.car) == ("synthetic", 7, "LEXUS_CTH")

    def test_realtime_route(self, route):
        r = DriveReport.from_route(route)
        assert not r.lockstep
        assert r.wall_s == pytest.approx(19.95)
        self.check(r)

    def test_lockstep_route_gives_the_same_figures(self, tmp_path):
        r = DriveReport.from_route(lockstep_route(tmp_path))
        assert r.lockstep
        assert r.wall_s == pytest.approx(19.95 / 3, abs=0.01)
        self.check(r)

    def test_json_has_the_contract_keys(self, route, tmp_path):
        r = DriveReport.from_route(route)
        d = json.loads(r.to_json(str(tmp_path / "report.json")))
        assert json.loads((tmp_path / "report.json").read_text()) == d
        for key in ("minutes", "engaged_minutes", "engaged_fraction", "disengagements", "lane_departures",
                    "collisions", "lat_err_mean_m", "lat_err_p95_m", "min_time_gap_s", "max_jerk", "alerts",
                    "cpu_cores", "missed_model_frames"):
            assert key in d, key
        assert d["disengagements"][0] == {"t": 14.0, "reason": "brakePressed", "kind": "userDisable", "alert": "",
                                          "driver": "drifting: +0.10 m off the lane centre"}
        assert isinstance(d["lane_departures"], int) and isinstance(d["missed_model_frames"], int)

    def test_text_tells_the_story(self, route):
        text = DriveReport.from_route(route).text()
        for part in ("synthetic (seed 7, car LEXUS_CTH), 0.33 simulated min",
                     "engaged 0.24 of 0.33 min: 91% of the time after the first engagement at 4.05 s",
                     "14.0 s  brakePressed (userDisable): the driver braked  [the driver: drifting: +0.10 m off the "
                     "lane centre]",
                     "17.0 s  canError (immediateDisable): CAN Error: Check Connections", "collisions: 1 (at 12.0 s)",
                     "lane departures: 2 (at 16.0, 18.0 s)", "mean 0.16 m, p95 0.30 m", "1.50 s at 5.0 s",
                     "steerOverride x1", "modeld 0.40, bridge 0.30", "missed model frames: 3 of 396",
                     "short of the thresholds: 1 collision; 2 lane departures; engaged only 91%"):
            assert part in text, f"{part!r} not in:\n{text}"

    def test_plot_writes_a_png(self, route, tmp_path):
        r = DriveReport.from_route(route)
        json_path, png = r.save(str(tmp_path))
        with open(png, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert os.path.getsize(png) > 20_000 and os.path.exists(json_path)


def test_steering_comfort_is_measured_while_engaged(route):
    r = DriveReport.from_route(route)
    assert r.max_lat_jerk == pytest.approx(1.0, abs=0.05)   # the 1 m/s^3 lateral ramp while engaged
    assert r.steer_rate_rms_deg_s == pytest.approx(math.sqrt((39 * 25 + 2 * 6.25) / 290), abs=0.01)
    # the chatter, and nothing of the 0.2 Hz steering: its RMS (amplitude / sqrt 2) over the runs of lateral control
    assert r.steer_osc_rms == pytest.approx(CHATTER / math.sqrt(2), rel=0.1)
    # of the command's energy: 2.7% over whole cycles of both; more, as the short runs hold less of the slow part
    assert 0.02 < r.steer_osc_share < 0.06
    assert "torque command above 1 Hz (oscillation): RMS 0.03" in r.text()


def test_a_drive_without_lead_or_engagement_says_so(tmp_path):
    r = DriveReport.from_route(realtime_route("plain", leads=False, engage=False))
    d = json.loads(r.to_json())
    assert d["min_time_gap_s"] is None and d["lat_err_mean_m"] is None and d["max_jerk"] is None
    assert d["engaged_fraction"] == 0.0 and d["disengagements"] == [] and d["first_engaged_t"] is None
    assert not math.isnan(d["lat_err_mean_all_m"])
    text = r.text()
    assert "engaged: never" in text and "no lead in the same lane" in text and "never engaged" in text
    assert r.car == "" and "synthetic (seed 7), " in text  # card never published carParams: no car named


def test_a_route_without_simstate_is_refused(tmp_path):
    from selfdrive.loggerd.logreader import LogError
    msg = messaging.new_message("carState")
    with pytest.raises(LogError, match="no simState"):
        DriveReport.from_route(write_route([msg], "nosim"))


def route_without(name: str, gone, extra=()) -> str:
    """The known drive with the messages for which gone(t, service) is true left out (and `extra` added)."""
    kept = [(t, msg) for t, msg in sorted([*drive(), *extra], key=lambda x: x[0]) if not gone(t, msg.which())]
    return write_route(on_the_machines_clock(kept), name)


def test_a_recording_gap_is_not_a_disengagement_but_a_silent_selfdrived_is():
    # 10-11.5 s engaged: loggerd down (nothing recorded) is not selfdrived gone; selfdriveState alone missing is
    gap = DriveReport.from_route(route_without("gap", lambda t, s: 10.0 < t < 11.5))
    assert gap.recording_gaps == [pytest.approx((10.0, 11.5))]
    assert [(x.t, x.reason) for x in gap.disengagements] == [(14.0, "brakePressed"), (17.0, "canError")]
    assert "recording gaps (nothing recorded: loggerd down or the disk full; engagement unknown there): " \
           "10.0-11.5 s" in gap.text()
    silent = DriveReport.from_route(route_without("silent", lambda t, s: 10.0 < t < 11.5 and s == "selfdriveState"))
    assert silent.recording_gaps == []
    assert [x.kind for x in silent.disengagements] == ["stale", "userDisable", "immediateDisable"]
    assert silent.disengagements[0].t == pytest.approx(10.5, abs=0.06)


def test_a_lockstep_recording_gap_is_not_a_disengagement_whatever_the_bus_clock_stamps_in_it(tmp_path):
    """In lockstep simState carries the bus clock, behind the machine's once the world has paused (here 0.8 s), and
    loggerd starts each segment with the latched carParams, old stamp and all: after a 1.5 s hole in the recording
    both land inside the hole on the machine's clock, and neither means selfdrived was silent there."""
    def write(name: str, gone) -> str:
        path = tmp_path / name
        os.makedirs(path / "0")
        w = FrameWriter(str(path / "0" / "rlog.zst"))
        for t, msg in drive():   # t: when it was recorded, on the machine's clock
            if gone(t, msg.which()):
                continue
            msg.logMonoTime = T0 + round((t - 0.8 if msg.which() == "simState" else t) * 1e9)
            w.add(msg.to_bytes())
        cp = messaging.new_message("carParams")
        cp.carParams.carFingerprint = "LEXUS_CTH"
        cp.logMonoTime = T0 + round(10.8 * 1e9)   # the newest carParams, written again as the recording resumed
        w.add(cp.to_bytes())
        w.close()
        return str(path)
    gap = DriveReport.from_route(write("gap", lambda t, s: 10.0 < t < 11.5))
    assert [(x.t, x.reason) for x in gap.disengagements] == [(14.0, "brakePressed"), (17.0, "canError")]
    silent = DriveReport.from_route(write("silent", lambda t, s: 10.0 < t < 11.5 and s == "selfdriveState"))
    assert [x.kind for x in silent.disengagements] == ["stale", "userDisable", "immediateDisable"]


def test_restarted_processes_are_reported():
    died = manager_state({"modeld": 40.0, "bridge": 30.0})
    died.managerState.processes[0].restarts = 2
    r = DriveReport.from_route(route_without("died", lambda t, s: False, extra=[(19.999, died)]))
    assert r.restarts == {"modeld": 2}
    assert "processes restarted (they died): modeld x2" in r.text()
    assert DriveReport.from_route(route_without("fine", lambda t, s: False)).restarts == {}


def test_lockstep_is_what_route_json_records_not_a_guess(tmp_path):
    """A drive whose stamps look like real time is still lockstep when loggerd recorded the driven clock."""
    msgs = on_the_machines_clock(drive())
    driven = DriveReport.from_route(write_route(msgs, "driven", root=str(tmp_path), meta={"clock": "driven"}))
    wall = DriveReport.from_route(write_route(on_the_machines_clock(drive()), "wall", root=str(tmp_path),
                                              meta={"clock": "wall"}))
    assert driven.lockstep and not wall.lockstep
    assert driven.text().splitlines()[0].endswith("lockstep, 20 s of wall time")
