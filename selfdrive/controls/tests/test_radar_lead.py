"""Which radar track is the model's lead, and what the planner learns from it."""

import numpy as np
import pytest

from selfdrive.controls.lib.long_mpc import Lead
from selfdrive.controls.lib.radar_lead import CAMERA_TO_FRONT, RadarLead, RadarPoint, RadarView

STRAIGHT = (np.array([0.0, 200.0]), np.array([0.0, 0.0]))


def vision(x: float, v: float = 20.0) -> Lead:
    return Lead(x=x, v=v, a=0.0, prob=0.9)


def at_camera(x: float, track_id: int = 1, v_rel: float = 0.0, y: float = 0.0) -> RadarPoint:
    """A radar point whose rear is `x` m from the camera."""
    return RadarPoint(track_id, x - CAMERA_TO_FRONT, y, v_rel)


def lead_of(points, model_x: float, rl: RadarLead | None = None, t: float = 1.0) -> Lead | None:
    rl = rl or RadarLead()
    return rl.update(RadarView(t, tuple(points)), t, vision(model_x), 20.0, *STRAIGHT)


class TestMatch:
    @pytest.mark.parametrize("model_x, radar_x, matched", [
        (20.0, 25.0, True),    # near: the model's distance is good to a few metres
        (20.0, 30.0, False),   # a car 10 m past a near lead the radar misses: not the lead
        (67.0, 100.0, True),   # far: the model reads a car at 100 m at ~67 m
        (67.0, 120.0, False),
    ])
    def test_the_gate_is_tight_near_and_wide_far(self, model_x, radar_x, matched):
        lead = lead_of([at_camera(radar_x)], model_x)
        assert (lead is not None) == matched
        if matched:
            assert lead.x == pytest.approx(radar_x)  # placed where the radar says, from the camera

    def test_the_nearest_to_the_model_distance_on_the_path_wins(self):
        points = [at_camera(30.0, 1), at_camera(41.0, 2), at_camera(40.0, 3, y=3.6)]
        assert lead_of(points, 40.0).x == pytest.approx(41.0)

    def test_the_followed_track_is_kept_while_it_stays_in_the_gate(self):
        rl = RadarLead()
        assert lead_of([at_camera(40.0, 1)], 40.0, rl, t=1.0).x == pytest.approx(40.0)
        # another car appears nearer the model's distance, the followed one is still in the gate: keep it
        assert lead_of([at_camera(44.0, 1), at_camera(40.5, 2)], 40.0, rl, t=1.05).x == pytest.approx(44.0)

    def test_a_point_with_non_finite_numbers_is_skipped(self):
        bad = RadarPoint(2, float("nan"), 0.0, 0.0), RadarPoint(3, 38.5, 0.0, float("inf"))
        assert lead_of([*bad, at_camera(42.0, 1)], 40.0).x == pytest.approx(42.0)
        assert lead_of(bad, 40.0) is None

    def test_stale_radar_data_is_not_used(self):
        rl = RadarLead()
        assert rl.update(RadarView(1.0, (at_camera(40.0),)), 1.2, vision(40.0), 20.0, *STRAIGHT) is None


class TestSpeed:
    def test_speed_is_the_radars_and_the_deceleration_is_filtered_from_it(self):
        rl, lead = RadarLead(), None
        for k in range(30):  # 1.5 s of a lead braking at 3 m/s² from 15 m/s, 30 m ahead; we do 20
            t = 1.0 + 0.05 * k
            v_lead = 15.0 - 3.0 * 0.05 * k
            lead = rl.update(RadarView(t, (at_camera(30.0, v_rel=v_lead - 20.0),)), t, vision(30.0), 20.0, *STRAIGHT)
        assert lead.v == pytest.approx(v_lead, abs=0.1)
        assert lead.a == pytest.approx(-3.0, abs=0.3)

    def test_a_lockstep_clock_does_not_change_the_deceleration(self):
        # cycles stamped 20 ms apart (a drive faster than real time) are still the radar's 50 ms cycles
        rl, lead = RadarLead(), None
        for k in range(30):
            t = 1.0 + 0.02 * k
            lead = rl.update(RadarView(t, (at_camera(30.0, v_rel=-5.0 - 0.15 * k),)), t, vision(30.0), 20.0,
                             *STRAIGHT)
        assert lead.a == pytest.approx(-3.0, abs=0.3)

    def test_a_new_track_starts_the_filter_again(self):
        rl = RadarLead()
        for k in range(10):
            lead_of([at_camera(30.0, 1, v_rel=-5.0 - 0.15 * k)], 30.0, rl, t=1.0 + 0.05 * k)
        lead = lead_of([at_camera(31.0, 2, v_rel=0.0)], 30.0, rl, t=1.55)  # the old track is gone
        assert lead.v == pytest.approx(20.0) and lead.a == 0.0
