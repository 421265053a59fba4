"""The model's outputs -> a modelV2 message (car frame: x forward, y left, z up, SI units)."""

import math

import numpy as np

from selfdrive.modeld.constants import T_PATH, X_LINES

CONFIDENCE_STD = 0.5   # m of path lateral std at 3 s that halves the confidence


def _xyzt(dst, x, y, t=None, x_std=None, y_std=None, z=None) -> None:
    dst.x = [float(v) for v in x]
    dst.y = [float(v) for v in y]
    dst.z = [0.0] * len(dst.x) if z is None else [float(v) for v in z]
    if t is not None:
        dst.t = [float(v) for v in t]
    if x_std is not None:
        dst.xStd = [float(v) for v in x_std]
    if y_std is not None:
        dst.yStd = [float(v) for v in y_std]


def confidence(out: dict[str, np.ndarray]) -> float:
    """0..1 from the path's predicted lateral std at 3 s."""
    std = float(np.interp(3.0, T_PATH, out["path_std"][:, 1]))
    return float(math.exp(-math.log(2.0) * std / CONFIDENCE_STD)) if math.isfinite(std) else 0.0


def all_finite(out: dict[str, np.ndarray]) -> bool:
    return all(bool(np.isfinite(v).all()) for v in out.values())


def fill_model_v2(m, out: dict[str, np.ndarray], frame_id: int, timestamp_eof: int, exec_time: float,
                  frames_dropped: int, drop_perc: float) -> None:
    """Fills a modelV2 builder from one model run (`out` as ModelRunner.run returns it)."""
    m.frameId = frame_id
    m.timestampEof = timestamp_eof
    m.modelExecutionTime = exec_time
    m.framesDropped = frames_dropped
    m.frameDropPerc = drop_perc
    path, std = out["path"], out["path_std"]
    _xyzt(m.position, path[:, 0], path[:, 1], T_PATH, std[:, 0], std[:, 1], path[:, 2])
    m.position.zStd = [float(v) for v in std[:, 2]]
    vel = np.gradient(path[:, :2], T_PATH, axis=0)
    _xyzt(m.velocity, vel[:, 0], vel[:, 1], T_PATH)
    lines = m.init("laneLines", len(out["lanes"]))
    for i, dst in enumerate(lines):
        _xyzt(dst, X_LINES, out["lanes"][i], None, None, out["lanes_std"][i])
    m.laneLineProbs = [float(p) for p in out["lane_prob"]]
    m.laneLineStds = [float(s[0]) for s in out["lanes_std"]]
    edges = m.init("roadEdges", len(out["edges"]))
    for i, dst in enumerate(edges):
        _xyzt(dst, X_LINES, out["edges"][i], None, None, out["edges_std"][i])
    m.roadEdgeStds = [float(s[0]) for s in out["edges_std"]]
    lead = m.init("leads", 1)[0]
    lead.t = [0.0]
    lead.x = [max(float(out["lead"][0]), 0.0)]
    lead.y = [0.0]
    lead.v = [max(float(out["lead"][1]), 0.0)]
    lead.a = [0.0]
    lead.xStd = [float(out["lead_std"][0])]
    lead.vStd = [float(out["lead_std"][1])]
    lead.prob = float(out["lead_prob"][0])
    m.desiredCurvature = float(out["curvature"][0])
    m.confidence = confidence(out)
