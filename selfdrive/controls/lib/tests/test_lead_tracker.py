import math

import numpy as np
import pytest

from common.realtime import DT_MDL
from selfdrive.controls.lib.lead_tracker import LOST_S, LeadTracker
from selfdrive.controls.lib.long_mpc import Lead


def closing(tracker: LeadTracker, x0: float, v_ego: float, v_lead: float, seconds: float, model_speed_bias: float,
            noise_m: float = 0.0, seed: int = 0) -> list[Lead]:
    """The model sees a lead at the right distance (with noise) and the wrong speed (biased); the tracker's leads."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(round(seconds / DT_MDL)):
        x = x0 + (v_lead - v_ego) * k * DT_MDL
        seen = Lead(x=x + noise_m * float(rng.standard_normal()), v=v_lead + model_speed_bias, a=0.0, prob=0.99)
        out.append(tracker.update(seen, v_ego))
    return out


def test_closing_speed_comes_from_the_distance_not_the_models_speed():
    # the stop-and-go failure: a 7 m/s slower lead the model reads as 7 m/s faster; the gap tells the truth
    leads = closing(LeadTracker(), 40.0, 12.0, 5.0, 3.0, model_speed_bias=14.0, noise_m=1.0)
    assert leads[-1].v == pytest.approx(5.0, abs=1.5)
    assert abs(leads[-1].v - 5.0) < abs(leads[0].v - 5.0) / 4


def test_a_steady_lead_is_tracked_without_drift():
    leads = closing(LeadTracker(), 30.0, 20.0, 20.0, 5.0, model_speed_bias=0.0, noise_m=1.5, seed=3)
    v = np.array([ld.v for ld in leads[40:]])
    assert np.abs(v - 20.0).max() < 1.5
    assert leads[-1].x == pytest.approx(30.0, abs=1.5)


def test_another_car_restarts_the_track():
    tr = LeadTracker()
    closing(tr, 50.0, 25.0, 25.0, 2.0, model_speed_bias=0.0)
    cut_in = tr.update(Lead(x=15.0, v=22.0, a=0.0, prob=0.9), 25.0)
    assert tr.restarts == 1 and cut_in.x == pytest.approx(15.0) and cut_in.v == pytest.approx(22.0)


def test_a_missed_frame_keeps_the_track_a_lost_lead_drops_it():
    tr = LeadTracker()
    closing(tr, 30.0, 15.0, 10.0, 3.0, model_speed_bias=8.0)
    v_lead = tr.track.v
    assert tr.update(None, 15.0) is None and tr.track is not None  # one frame without: no lead, track coasts
    back = tr.update(Lead(x=30.0 - 5.0 * 61 * DT_MDL, v=18.0, a=0.0), 15.0)  # two frames after the last
    assert tr.restarts == 0 and back.v == pytest.approx(v_lead, abs=0.5)
    for _ in range(round(LOST_S / DT_MDL)):
        tr.update(None, 15.0)
    assert tr.track is None


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_inputs_are_no_lead(bad):
    tr = LeadTracker()
    assert tr.update(Lead(x=bad, v=10.0, a=0.0), 10.0) is None
    assert tr.update(Lead(x=20.0, v=10.0, a=0.0), bad) is None
    assert tr.update(Lead(x=20.0, v=10.0, a=0.0), 10.0).x == pytest.approx(20.0)
