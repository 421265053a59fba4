"""Ground truth: the scoring rules (collision, lane departure, lines, leads) and the simState score."""

import math
from types import SimpleNamespace

import pytest

from tools.sim.lib.road import Road
from tools.sim.lib.score import SimScore
from tools.sim.lib.truth import DepartureJudge, Footprint, leads, line_offsets, overlaps

ROAD = Road(0, "straight", length=2000.0, num_lanes=3, lane_width=3.6)
W = ROAD.lane_width


def at(d: float, heading: float = 0.0, s: float = 100.0) -> Footprint:
    return Footprint(s, d, heading, 4.6, 1.85)


class TestDeparture:
    def test_centred_car_is_not_departing(self):
        assert DepartureJudge(1).update(ROAD, at(ROAD.lane_center_offset(1)), 0) is None

    def test_wheel_over_the_line_without_blinker(self):
        judge = DepartureJudge(1)
        left_line = -1 * W
        assert judge.update(ROAD, at(left_line - 0.95), 0) is None   # half width 0.925: 0.025 m inside
        assert judge.update(ROAD, at(left_line - 0.90), 0) == "left"  # 0.025 m over
        assert judge.update(ROAD, at(-2 * W + 0.90), 0) == "right"

    def test_heading_turns_the_corners_out(self):
        d = ROAD.lane_center_offset(1) + 0.5
        assert DepartureJudge(1).update(ROAD, at(d), 0) is None
        assert DepartureJudge(1).update(ROAD, at(d, heading=math.radians(10)), 0) == "left"

    def test_a_lane_change_with_the_blinker_is_not_a_departure_on_either_half(self):
        judge = DepartureJudge(1)
        for d in (-1.5 * W, -1.1 * W, -0.9 * W, -0.5 * W):  # from lane 1 into lane 0 (left)
            assert judge.update(ROAD, at(d), 1) is None
        assert judge.home == 0
        # the wrong blinker does not excuse it
        judge = DepartureJudge(1)
        assert judge.update(ROAD, at(-1.1 * W), -1) == "left"

    @pytest.mark.parametrize("blinker", [-1, 0, 1])
    def test_leaving_the_asphalt_is_always_a_departure(self, blinker):
        left_edge, right_edge = ROAD.edges
        assert DepartureJudge(0).update(ROAD, at(left_edge - 0.5), blinker) == "road_edge"
        assert DepartureJudge(2).update(ROAD, at(right_edge + 0.5), blinker) == "road_edge"


def test_overlaps_is_exact_for_rectangles():
    a = Footprint(0.0, 0.0, 0.0, 4.0, 2.0)
    assert overlaps(a, Footprint(3.9, 0.0, 0.0, 4.0, 2.0))
    assert not overlaps(a, Footprint(4.1, 0.0, 0.0, 4.0, 2.0))
    assert not overlaps(a, Footprint(0.0, 2.05, 0.0, 4.0, 2.0))
    # a box turned 45 degrees reaches further along its diagonal
    assert overlaps(a, Footprint(3.3, 0.0, math.radians(45), 2.0, 2.0))
    assert not overlaps(a, Footprint(3.5, 0.0, math.radians(45), 2.0, 2.0))


def test_line_offsets_in_the_ego_frame():
    x, y, yaw = ROAD.position(100.0, ROAD.lane_center_offset(1))
    left = line_offsets(ROAD, x, y, yaw, 100.0, -W)
    right = line_offsets(ROAD, x, y, yaw, 100.0, -2 * W)
    assert left == pytest.approx([W / 2] * len(left), abs=1e-6)
    assert right == pytest.approx([-W / 2] * len(right), abs=1e-6)


def test_leads_nearest_first_same_direction_only():
    ego = at(ROAD.lane_center_offset(1))
    cars = [SimpleNamespace(s=160.0, d=ego.d, v=20.0, a=0.0, length=4.6, width=1.8, direction=1),
            SimpleNamespace(s=130.0, d=ROAD.lane_center_offset(0), v=22.0, a=-1.0, length=4.6, width=1.8, direction=1),
            SimpleNamespace(s=120.0, d=ego.d, v=20.0, a=0.0, length=4.6, width=1.8, direction=-1),
            SimpleNamespace(s=90.0, d=ego.d, v=20.0, a=0.0, length=4.6, width=1.8, direction=1),
            SimpleNamespace(s=400.0, d=ego.d, v=20.0, a=0.0, length=4.6, width=1.8, direction=1)]
    out = leads(ROAD, ego, cars)
    assert [r["dRel"] for r in out] == pytest.approx([130.0 - 100.0 - 4.6, 160.0 - 100.0 - 4.6])
    assert [r["sameLane"] for r in out] == [False, True]
    assert out[0]["yRel"] == pytest.approx(W) and out[0]["aLead"] == -1.0


def test_score_counts_events_not_messages():
    sc = SimScore()
    flags = [(0, 0), (1, 0), (1, 0), (0, 0), (0, 1), (0, 1), (1, 1), (0, 0)]
    for i, (c, d) in enumerate(flags):
        sc.add(SimpleNamespace(t=0.05 * (i + 1), vEgo=10.0, collision=bool(c), laneDeparture=bool(d)))
    assert sc.collisions == pytest.approx([0.1, 0.35])
    assert sc.departures == pytest.approx([0.25])
    assert sc.distance == pytest.approx(10.0 * 0.35)
    assert sc.gaps == 0
    sc.add(SimpleNamespace(t=1.0, vEgo=10.0, collision=False, laneDeparture=False))
    assert sc.gaps == 1 and "1 gaps" in sc.lines()[0]
    assert SimScore().lines() == ["  no simState received: the simulator did not run"]
