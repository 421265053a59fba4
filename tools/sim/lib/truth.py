"""Ground truth for scoring (simState): where the ego is on the road, the lane lines ahead of it, the
vehicles around it, and whether it collided or left its lane. Never read by the onboard stack.

Definitions (the scoring contract):
  - collision: the ego's footprint (a rectangle in road coordinates, turned by its heading) overlaps
    another vehicle's.
  - lane departure: a corner of the ego's footprint is past a line (its centre) of the ego's home lane
    (the last lane its whole footprint was in) on a side the blinker does not point to, or past the edge
    of the asphalt on either side (a blinker does not excuse leaving the road).
  - leads: vehicles ahead in our direction within LEAD_RANGE; dRel from the ego's front bumper to the
    lead's rear bumper, yRel the lateral offset of its centre (left positive).
  - leftLine/rightLine: lateral offsets (ego frame: x forward, y left) of the two lines bounding the
    ego's lane, at sampleDistances ahead along the road.
"""

import math
from dataclasses import dataclass

import numpy as np

SAMPLE_DISTANCES = (0.0, 10.0, 20.0, 30.0, 50.0, 75.0, 100.0)
LEAD_RANGE = 150.0
MAX_LEADS = 4


@dataclass(frozen=True)
class Footprint:
    s: float
    d: float
    heading: float   # rad relative to the road
    length: float
    width: float

    def corners_d(self) -> tuple[float, float]:
        """(min d, max d) of the four corners."""
        half = abs(0.5 * self.length * math.sin(self.heading)) + abs(0.5 * self.width * math.cos(self.heading))
        return self.d - half, self.d + half

    def corners_s(self) -> tuple[float, float]:
        half = abs(0.5 * self.length * math.cos(self.heading)) + abs(0.5 * self.width * math.sin(self.heading))
        return self.s - half, self.s + half


def overlaps(a: Footprint, b: Footprint) -> bool:
    """Separating-axis test of two rectangles in the (s, d) plane (exact for rectangles)."""
    def corners(f: Footprint) -> np.ndarray:
        c, s = math.cos(f.heading), math.sin(f.heading)
        hl, hw = 0.5 * f.length, 0.5 * f.width
        local = np.array([[hl, hw], [hl, -hw], [-hl, -hw], [-hl, hw]])
        rot = np.array([[c, -s], [s, c]])
        return local @ rot.T + np.array([f.s, f.d])
    ca, cb = corners(a), corners(b)
    for f in (a, b):
        c, s = math.cos(f.heading), math.sin(f.heading)
        for axis in (np.array([c, s]), np.array([-s, c])):
            pa, pb = ca @ axis, cb @ axis
            if pa.max() < pb.min() or pb.max() < pa.min():
                return False
    return True


class DepartureJudge:
    """Lane departures over a drive. The home lane is the last lane the ego's whole footprint was in;
    straddling or passing one of its lines is a departure unless the blinker points across that line
    (a lane change). Leaving the asphalt is always one."""

    def __init__(self, home_lane: int | None):
        self.home = home_lane

    def update(self, road, ego: Footprint, blinker: int) -> str | None:
        """'left'/'right'/'road_edge' when the ego is departing now, else None."""
        lo, hi = ego.corners_d()
        left_edge, right_edge = road.edges
        if hi > left_edge or lo < right_edge:
            return "road_edge"
        lane_lo, lane_hi = road.lane_at(lo), road.lane_at(hi)
        if lane_lo is not None and lane_lo == lane_hi:
            self.home = lane_lo
            return None
        if self.home is None:
            return "road_edge" if lane_lo is None or lane_hi is None else None
        w = road.lane_width
        if hi > -self.home * w and blinker != 1:         # over the home lane's left line
            return "left"
        if lo < -(self.home + 1) * w and blinker != -1:  # over its right line
            return "right"
        return None


def line_offsets(road, x: float, y: float, yaw: float, s: float, d_line: float) -> list[float]:
    """Lateral offsets, in the ego frame, of the line at constant road offset d_line, SAMPLE_DISTANCES ahead."""
    ss = s + np.asarray(SAMPLE_DISTANCES)
    lx, ly, _ = road.positions(ss, d_line)
    return (-(lx - x) * math.sin(yaw) + (ly - y) * math.cos(yaw)).tolist()


def leads(road, ego: Footprint, others) -> list[dict]:
    """The vehicles ahead (same direction, within LEAD_RANGE), nearest first, as SimLead fields."""
    out = []
    for o in others:
        if getattr(o, "direction", 1) < 0 or o.s <= ego.s:
            continue
        d_rel = o.s - ego.s - 0.5 * (o.length + ego.length)
        if d_rel > LEAD_RANGE:
            continue
        out.append({"dRel": d_rel, "yRel": o.d - ego.d, "vLead": o.v, "aLead": getattr(o, "a", 0.0),
                    "sameLane": road.lane_at(o.d) == road.lane_at(ego.d)})
    out.sort(key=lambda r: r["dRel"])
    return out[:MAX_LEADS]
