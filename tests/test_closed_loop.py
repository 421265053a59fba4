"""Closed loop: the whole stack drives the simulator for a minute per scenario (the manager in sim mode, lockstep,
the real daemons, sockets and ONNX model; see tools/sim/lib/stack_drive.py), judged by `roadpilot sim`'s report of
the recorded route against the issue's thresholds. Each scenario is driven once (cached for the module) and
judged twice: safety and lane centring (no collision, no lane departure, mean |lateral error|, min time gap)
for every scenario, and staying engaged (>= 95% of the time) apart.

Seeds: training used 0..15, validation 100000.., test 200000..; these drives use 300000... cut_in's seed is
300001 because the scenario's jitter (8% on gaps, speeds and times) makes the cutting car cross into the ego's
lane anywhere from 0.1 s to 1.1 s ahead of it for 300000..300011 (at 25 m/s, before anything can react):
below 0.8 s the minimum time gap measures the scenario, not the stack. 300001 crosses at 1.1 s.
"""

import numpy as np
import pytest

from cereal import messaging
from common.transformations.camera_file import frame_camera
from tools.replay.rerun import rerun
from tools.sim.lib.drive_report import LIMITS, DriveReport
from tools.sim.lib.stack_drive import Drive, describe

DRIVE_S = 60.0
SEEDS = {"highway": 300_000, "curvy": 300_000, "suburban": 300_000, "stop_and_go": 300_000, "cut_in": 300_001}
# the road camera of each drive, when not the default one: every camera path (another field of view, an off-centre
# principal point, a distorting lens) is driven in closed loop, from the renderer through camerad to modeld's warp
CAMERAS = {"highway": {"camera_fov": 60.0},
           "curvy": {"camera_fov": 90.0, "camera_k1": -0.1, "camera_shift_px": 20.0}}
WITH_LEAD = {"highway", "stop_and_go", "cut_in"}   # a same-lane lead to follow for (most of) the drive
MAX_LAT_ERR_MEAN_M = LIMITS["lat_err_mean_m"]
MIN_TIME_GAP_S = LIMITS["min_time_gap_s"]
MIN_ENGAGED = LIMITS["engaged_fraction"]
LOW_SPEED = 8.5         # m/s: 19 mph, below which a car without stop-and-go cannot stay engaged (opendbc)

_drives: dict[str, DriveReport] = {}


def drive(scenario: str, tmp_path) -> DriveReport:
    """The scenario's drive, run once for the module (a minute of wall time each)."""
    if scenario not in _drives:
        d = Drive(tmp_path, scenario, SEEDS[scenario], DRIVE_S, watch=("roadCameraState",), **CAMERAS.get(scenario, {}))
        with d:
            r = d.drive()
        print(describe(r, d.wall_s))
        # the stack was told the camera the simulator drew with
        said = frame_camera(messaging.log_from_bytes(d.raw["roadCameraState"][-1]).roadCameraState)
        true = d.cfg.camera_model()
        assert np.allclose([said.fx, said.fy, said.cx, said.cy, *said.distortion],
                           [true.fx, true.fy, true.cx, true.cy, *true.distortion], atol=1e-3), (said, true)
        _drives[scenario] = r
    return _drives[scenario]


@pytest.mark.parametrize("scenario", list(SEEDS))
def test_the_stack_drives_the_scenario_safely_in_its_lane(scenario, tmp_path):
    r = drive(scenario, tmp_path)
    assert r.minutes * 60.0 >= DRIVE_S - 0.05
    assert r.collisions == 0, f"collisions at {r.collision_times} s"
    assert r.lane_departures == 0, f"lane departures at {r.lane_departure_times} s"
    assert r.first_engaged_t is not None, f"never engaged; alerts {r.alerts}"
    assert r.lat_err_mean_m <= MAX_LAT_ERR_MEAN_M
    if scenario in WITH_LEAD:
        assert r.min_time_gap_s is not None, "never behind a lead while engaged"
    if r.min_time_gap_s is not None:
        assert r.min_time_gap_s >= MIN_TIME_GAP_S, f"at {r.min_time_gap_t} s"


@pytest.mark.parametrize("scenario", list(SEEDS))
def test_the_stack_steers_smoothly(scenario, tmp_path):
    """No chatter (the old controller's 3 Hz oscillation measured 0.13-0.15 of full torque) and no lateral jerk
    beyond what a plan may ask."""
    r = drive(scenario, tmp_path)
    assert r.steer_osc_rms is not None and r.steer_osc_rms <= LIMITS["steer_osc_rms"]
    assert r.max_lat_jerk is not None and r.max_lat_jerk <= LIMITS["max_lat_jerk"]


# suburban's corners (radius down to 50 m) ask up to about what LEXUS_CTH's steering turns at full torque at the
# speed the model's path allows (torqued learns 1.7-1.8 m/s²). Until 2026-12-07 it failed this (seed 300000: the
# driver took over for drifting at 26.8 s); it stays engaged since the model reads sharp corners better (trained with
# the `corners` data, models/README.md) and controlsd slows down while the steering is at its limit.
@pytest.mark.parametrize("scenario", list(SEEDS))
def test_the_stack_stays_engaged(scenario, tmp_path):
    r = drive(scenario, tmp_path)
    assert r.first_engaged_t is not None, f"never engaged; alerts {r.alerts}"
    assert r.engaged_fraction >= MIN_ENGAGED, f"disengagements {r.disengagements}"


def test_stop_and_go_traffic_is_followed_engaged_at_low_speed(tmp_path):
    """The simulated car's cruise works down to a stop: behind the lead creeping at 2 m/s the stack stays engaged
    (on a car without stop-and-go selfdrived disengages below 19 mph: speedTooLow)."""
    r = drive("stop_and_go", tmp_path)
    tr = r.trace
    slow_engaged_s = float(np.sum(tr.dt[tr.engaged & (tr.v < LOW_SPEED)]))
    assert slow_engaged_s >= 5.0, f"engaged below 19 mph for {slow_engaged_s:.1f} s only"
    assert not any("speedTooLow" in d.reason for d in r.disengagements)


def test_the_radar_places_the_lead_through_the_stops(tmp_path):
    """Stop-and-go traffic is followed on the radar's distance and speed (the model's speed lags a braking lead:
    the driver took over at the first stop when the model alone placed the lead)."""
    r = drive("stop_and_go", tmp_path)
    plans = sum(r.lead_sources.values())
    assert plans >= 0.8 * DRIVE_S * 20, f"a lead in {plans} plans only"
    assert r.lead_sources.get("radar", 0) >= 0.95 * plans, r.lead_sources


def test_the_recorded_drive_reruns_to_the_same_carcontrol(tmp_path):
    """A route recorded by `roadpilot sim --lockstep`, re-driven through controlsd (a real process in lockstep, fed
    the recorded carState, plan and selfdriveState as the live one had them) gives the recorded carControl."""
    r = drive("highway", tmp_path)
    rr = rerun(r.route, "controlsd", tolerance=1e-6)
    print("\n".join(rr.lines()))
    assert rr.compared["carControl"] >= 0.95 * DRIVE_S * 100  # 100 Hz: (nearly) every cycle paired
    assert rr.share("carControl") >= 0.999, rr.worst.get("carControl")
