"""The simulated radar, read the way card reads a real one: opendbc's Toyota RadarInterface over its frames."""

import math

import numpy as np
import pytest
from opendbc.can.dbc import DBC
from opendbc.car import Bus
from opendbc.car.toyota.interface import CarInterface
from opendbc.car.toyota.values import DBC as TOYOTA_DBC

from tools.sim.lib.radar import FOV_DEG, PERIOD_MS, SLOTS, TRACK_A, TRACK_B, SimRadar, targets
from tools.sim.lib.road import Road
from tools.sim.lib.simulation import DT_MS, SimConfig, Simulation
from tools.sim.lib.traffic import Vehicle
from tools.sim.lib.truth import leads

ROAD = Road(0, "straight", length=2000.0, num_lanes=3, lane_width=3.6)
EGO_LENGTH = 4.32
CAR = "LEXUS_CTH"


def radar_interface():
    CP = CarInterface.get_params(CAR, {i: {} for i in range(8)}, [], False, False, False)
    assert not CP.radarUnavailable
    return CarInterface.RadarInterface(CP)


def ego_at(s: float, d: float) -> tuple[float, float, float]:
    return ROAD.position(s, d)


def vehicle(vid: int, s: float, lane: int, v: float) -> Vehicle:
    return Vehicle(vid, s, ROAD.lane_center_offset(lane), lane, v)


def read(radar: SimRadar, seen, cycles: int = 1):
    """RadarData after `cycles` radar cycles of `seen` targets."""
    RI, rd = radar_interface(), None
    for k in range(cycles):
        rd = RI.update([(k * PERIOD_MS * 1_000_000, radar.frames(seen))])
    return rd


class TestTargets:
    def test_a_lead_in_our_lane_is_measured_from_the_front_bumper(self):
        x, y, yaw = ego_at(100.0, ROAD.lane_center_offset(1))
        lead = vehicle(1, 140.0, 1, 15.0)  # centres 40 m apart: bumper to bumper 40 - (4.32 + 4.6) / 2
        (tg,) = targets(ROAD, x, y, yaw, 20.0, EGO_LENGTH, [lead])
        assert tg.d_rel == pytest.approx(40.0 - 0.5 * (EGO_LENGTH + 4.6), abs=1e-6)
        assert tg.y_rel == pytest.approx(0.0, abs=1e-6) and tg.v_rel == pytest.approx(-5.0)

    def test_the_beam_sees_the_next_lane_far_ahead_but_not_beside_us(self):
        x, y, yaw = ego_at(100.0, ROAD.lane_center_offset(1))
        far, near = vehicle(1, 160.0, 0, 20.0), vehicle(2, 110.0, 0, 20.0)  # one lane left: 3.6 m
        seen = targets(ROAD, x, y, yaw, 20.0, EGO_LENGTH, [far, near])
        assert [t.id for t in seen] == [1]
        assert seen[0].y_rel == pytest.approx(3.6, abs=1e-6)  # left is positive
        assert math.degrees(math.atan2(3.6, 110.0 - 100.0 - 0.5 * (EGO_LENGTH + 4.6))) > FOV_DEG

    def test_nothing_behind_us(self):
        x, y, yaw = ego_at(100.0, ROAD.lane_center_offset(1))
        assert targets(ROAD, x, y, yaw, 20.0, EGO_LENGTH, [vehicle(1, 90.0, 1, 25.0)]) == []


class TestFrames:
    def test_every_slot_every_cycle_track_a_then_b(self):
        frames = SimRadar(CAR, 0).frames([])
        assert [a for a, _, _ in frames] == [TRACK_A + i for i in range(SLOTS)] + [TRACK_B + i for i in range(SLOTS)]
        sizes = DBC(TOYOTA_DBC[CAR][Bus.radar]).addr_to_msg
        assert {b for _, _, b in frames} == {1} and all(len(d) == sizes[a].size for a, d, _ in frames)

    def test_opendbc_reads_the_track(self):
        x, y, yaw = ego_at(100.0, ROAD.lane_center_offset(1))
        seen = targets(ROAD, x, y, yaw, 20.0, EGO_LENGTH, [vehicle(1, 140.0, 1, 15.0), vehicle(2, 160.0, 0, 22.0)])
        rd = read(SimRadar(CAR, 0), seen, cycles=3)
        assert not rd.errors.canError
        pts = sorted(rd.points, key=lambda p: p.dRel)
        assert len(pts) == 2
        assert pts[0].dRel == pytest.approx(seen[0].d_rel, abs=0.5) and pts[0].vRel == pytest.approx(-5.0, abs=0.5)
        assert pts[0].yRel == pytest.approx(0.0, abs=0.5)
        assert pts[1].yRel == pytest.approx(3.6, abs=0.5) and pts[1].vRel == pytest.approx(2.0, abs=0.5)

    def test_a_vehicle_keeps_its_track_and_a_new_one_gets_a_new_track(self):
        x, y, yaw = ego_at(100.0, ROAD.lane_center_offset(1))
        lead, other = vehicle(1, 140.0, 1, 15.0), vehicle(2, 170.0, 1, 15.0)
        radar, RI = SimRadar(CAR, 0), radar_interface()
        ids = []
        for k, fleet in enumerate([[lead], [lead], [lead, other], [other]]):
            rd = RI.update([(k * PERIOD_MS * 1_000_000, radar.frames(targets(ROAD, x, y, yaw, 20.0, EGO_LENGTH,
                                                                             fleet)))])
            ids.append([p.trackId for p in sorted(rd.points, key=lambda p: p.dRel)])
        lead_id = ids[0][0]
        assert ids[1] == ids[0] and ids[2][0] == lead_id and ids[2][1] != lead_id
        assert ids[3] == [ids[2][1]]  # the lead gone: its track is dropped, the other keeps its own


def test_a_drive_radar_agrees_with_the_ground_truth():
    sim = Simulation(SimConfig(scenario="stop_and_go", seed=3, driver="supervise", use_cruise=True))
    RI = radar_interface()
    d_err, v_err = [], []
    for k in range(1, 1501):
        rd = RI.update([(k * DT_MS * 1_000_000, sim.step())])
        if rd is None:
            continue
        assert not rd.errors.canError or k < 100  # every message at its rate once the first cycles are in
        truth = [t for t in leads(sim.road, sim.footprint(), sim.world.vehicles) if t["sameLane"]]
        if not truth or truth[0]["dRel"] > 60.0:
            continue
        near = min(rd.points, key=lambda p: abs(p.dRel - truth[0]["dRel"]))
        d_err.append(near.dRel - truth[0]["dRel"])
        v_err.append(near.vRel - (truth[0]["vLead"] - sim.state.vx))
    assert len(d_err) > 200  # a lead in view for most of the 15 s
    assert np.abs(np.median(d_err)) < 0.3 and np.percentile(np.abs(d_err), 95) < 0.6
    assert np.abs(np.median(v_err)) < 0.1 and np.percentile(np.abs(v_err), 95) < 0.3
