"""What the planners take from one modelV2 message: the path, the model's lead and its own curvature, the ego lane.

One parse for both users: plannerd's longitudinal planner (lead, curve speeds) and controlsd's lateral planner (path,
lane lines). Non-finite or misshapen parts come out as missing (no lead, no lanes), never as numbers to plan with.
"""

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from selfdrive.controls.lib.drive_helpers import Geometry, LaneView, finite_or, path_geometry
from selfdrive.controls.lib.long_mpc import Lead

LEAD_PROB = 0.5            # the model's lead probability above which we follow it
EGO_LINES = (1, 2)         # laneLines: left-left, left, right, right-right


@dataclass(frozen=True)
class ModelData:
    """What the planners need from one modelV2 message."""
    t: np.ndarray = field(default_factory=lambda: np.zeros(0))   # plan times
    x: np.ndarray = field(default_factory=lambda: np.zeros(0))   # m forward
    y: np.ndarray = field(default_factory=lambda: np.zeros(0))   # m left
    lead: Lead | None = None
    desired_curvature: float = 0.0                                # the model's own, 1/m
    lanes: LaneView | None = None                                 # the ego lane's two lines, when the message has them

    @cached_property
    def geometry(self) -> Geometry | None:
        """The path's geometry (see drive_helpers.path_geometry), computed once for every user."""
        return path_geometry(self.x, self.y)


def _floats(lst) -> np.ndarray:
    return np.array(list(lst), dtype=np.float64)


def parse_model(md) -> ModelData:
    """ModelData from a modelV2 reader; a lead with non-finite or missing numbers is no lead."""
    pos = md.position
    t, x, y = _floats(pos.t), _floats(pos.x), _floats(pos.y)
    n = min(len(t), len(x), len(y))
    lead = None
    if len(md.leads) > 0:
        ld = md.leads[0]
        vals = [ld.x[0] if len(ld.x) else math.nan, ld.v[0] if len(ld.v) else math.nan,
                ld.a[0] if len(ld.a) else 0.0, ld.prob]
        if all(math.isfinite(v) for v in vals) and vals[3] > LEAD_PROB:
            lead = Lead(x=max(vals[0], 0.0), v=max(vals[1], 0.0), a=vals[2], prob=vals[3])
    return ModelData(t[:n], x[:n], y[:n], lead, finite_or(md.desiredCurvature, 0.0), _ego_lanes(md))


def _ego_lanes(md) -> LaneView | None:
    """The ego lane's lines from modelV2 (None when the message lacks them or they do not line up)."""
    if len(md.laneLines) <= max(EGO_LINES) or len(md.laneLineProbs) <= max(EGO_LINES) or \
            len(md.laneLineStds) <= max(EGO_LINES):
        return None
    left, right = (md.laneLines[i] for i in EGO_LINES)
    x, yl, yr = _floats(left.x), _floats(left.y), _floats(right.y)
    if len(x) < 2 or len(yl) != len(x) or len(yr) != len(x) or not np.array_equal(x, _floats(right.x)):
        return None
    return LaneView(x, yl, yr, tuple(float(md.laneLineProbs[i]) for i in EGO_LINES),
                    tuple(float(md.laneLineStds[i]) for i in EGO_LINES))
