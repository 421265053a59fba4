"""The simulated car's radar as its CAN bus shows it: the Toyota TSS-P radar on bus 1.

The real installation this simulates is the recorded RAV4 minute (../shared/data/comma2k19-rav4): DSU unplugged
(no ACC_CONTROL or PRE_COLLISION on bus 0) and the radar's own bus on the adapter's bus 1, where it sends 16
track slots every 50 ms, TRACK_A_0..15 (0x210-0x21F: distance, lateral offset, relative speed, valid, new track)
and then TRACK_B_0..15 (0x220-0x22F: score), packed with opendbc's toyota_adas DBC. opendbc's Toyota
RadarInterface reads exactly these.

What the radar sees: every vehicle whose nearest end lies within RANGE_M and FOV_DEG of the radar's axis (the
ego's heading, at the front bumper), in the ego frame, so a lead on a curve sits off-axis as it does in reality.
The distance is to that end (opendbc: "from front of car"), the relative speed is the target's speed along our
heading minus ours; each gets the measurement noise below (seeded: a drive stays deterministic). A vehicle keeps
its slot while it is seen; a slot given to a new vehicle says NEW_TRACK once. Not modelled: occlusion (the real
radar often sees the car ahead of the lead under it), clutter from the roadside, multiple reflections.
"""

import math
from dataclasses import dataclass

import numpy as np
from opendbc.can import CANPacker
from opendbc.car import Bus
from opendbc.car.can_definitions import CanData
from opendbc.car.toyota.values import DBC as TOYOTA_DBC

from tools.sim.lib.sim_car import Periodic

RADAR_BUS = 1
SLOTS = 16
TRACK_A, TRACK_B = 0x210, 0x220          # first address of each block (TSS-P; TSS2 radars use 0x180/0x190)
PERIOD_MS = 50                           # 20 Hz, as recorded
CYCLE = Periodic("TRACK_A_0", RADAR_BUS, PERIOD_MS, 20)  # a cycle starts with TRACK_A_0; phase: off the powertrain's
RANGE_M = 150.0
FOV_DEG = 10.0                           # half angle of the long-range beam
EMPTY_DIST = 255.0                       # LONG_DIST of an empty slot (opendbc: >= 255 is no target)
DIST_STD = 0.10                          # m
LAT_STD = 0.10                           # m
SPEED_STD = 0.10                         # m/s
SCORE_NEW, SCORE_STEP, SCORE_MAX = 30, 5, 100  # a track's confidence grows while it is seen


@dataclass(frozen=True)
class Target:
    """A vehicle as the radar sees it: ego frame, from the front bumper."""
    id: int
    d_rel: float      # m ahead of the front bumper
    y_rel: float      # m, left positive
    v_rel: float      # m/s along our heading, target minus ego


def targets(road, ego_x: float, ego_y: float, ego_yaw: float, ego_v: float, ego_length: float,
            vehicles) -> list[Target]:
    """The vehicles within the radar's range and beam, as Targets."""
    c, s = math.cos(ego_yaw), math.sin(ego_yaw)
    front = 0.5 * ego_length
    out = []
    for veh in vehicles:
        x, y, _, yaw = veh.pose(road)
        ends = [(x + sign * 0.5 * veh.length * math.cos(yaw), y + sign * 0.5 * veh.length * math.sin(yaw))
                for sign in (-1.0, 1.0)]
        px, py = min(ends, key=lambda e: (e[0] - ego_x) ** 2 + (e[1] - ego_y) ** 2)
        fx = (px - ego_x) * c + (py - ego_y) * s - front
        fy = -(px - ego_x) * s + (py - ego_y) * c
        if fx <= 0.0 or math.hypot(fx, fy) > RANGE_M or abs(math.degrees(math.atan2(fy, fx))) > FOV_DEG:
            continue
        out.append(Target(veh.id, fx, fy, veh.v * math.cos(yaw - ego_yaw) - ego_v))
    return out


class SimRadar:
    def __init__(self, platform: str, seed: int):
        self.packer = CANPacker(TOYOTA_DBC[platform][Bus.radar])
        self.rng = np.random.default_rng([seed, 0x4ADA])
        self.slots: list[int | None] = [None] * SLOTS   # vehicle id per slot
        self.scores = [0] * SLOTS
        self.counter = 0

    @staticmethod
    def due(t_ms: int, dt_ms: int = 10) -> bool:
        """Whether a radar cycle falls in (t_ms - dt_ms, t_ms]."""
        return CYCLE.due(t_ms, dt_ms)

    def frames(self, seen: list[Target]) -> list[CanData]:
        """One radar cycle: TRACK_A then TRACK_B for every slot, the nearest SLOTS targets in them."""
        seen = sorted(seen, key=lambda tg: tg.d_rel)[:SLOTS]
        by_id = {tg.id: tg for tg in seen}
        new = [False] * SLOTS
        for i, vid in enumerate(self.slots):
            if vid is not None and vid not in by_id:
                self.slots[i], self.scores[i] = None, 0
        for tg in seen:
            if tg.id not in self.slots:
                i = self.slots.index(None)
                self.slots[i], self.scores[i], new[i] = tg.id, SCORE_NEW, True
        noise = self.rng.normal(0.0, 1.0, (SLOTS, 3))  # for every slot: the noise does not depend on the traffic
        a_frames, b_frames = [], []
        for i, vid in enumerate(self.slots):
            if vid is None:
                a = {"LONG_DIST": EMPTY_DIST, "LAT_DIST": 0.0, "REL_SPEED": 0.0, "VALID": 0, "NEW_TRACK": 0}
                score = 0
            else:
                tg = by_id[vid]
                self.scores[i] = min(self.scores[i] + (0 if new[i] else SCORE_STEP), SCORE_MAX)
                a = {"LONG_DIST": max(tg.d_rel + DIST_STD * noise[i, 0], 0.0),
                     "LAT_DIST": -(tg.y_rel + LAT_STD * noise[i, 1]),  # the DBC's lateral axis points right
                     "REL_SPEED": tg.v_rel + SPEED_STD * noise[i, 2], "VALID": 1, "NEW_TRACK": int(new[i])}
                score = self.scores[i]
            a_frames.append(CanData(*self.packer.make_can_msg(TRACK_A + i, RADAR_BUS, {**a, "COUNTER": self.counter})))
            # REL_ACCEL's unit is not published and opendbc does not read it: left 0
            b = {"SCORE": score, "REL_ACCEL": 0, "COUNTER": self.counter}
            b_frames.append(CanData(*self.packer.make_can_msg(TRACK_B + i, RADAR_BUS, b)))
        self.counter = (self.counter + 1) % 256
        return a_frames + b_frames
