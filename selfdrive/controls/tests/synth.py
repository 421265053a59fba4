"""Synthesised inputs for planning/control tests and benchmarks: modelV2, carParams, carState.

There is no driving model yet, so tests describe the road they want (speed, curvature, lead) and get
the modelV2 a model would publish for it: the planned path is an arc of constant curvature driven at
constant speed, sampled on the model's usual time grid.
"""

from dataclasses import dataclass

import numpy as np

from cereal import car, messaging
from selfdrive.controls.lib.drive_helpers import LaneView
from selfdrive.controls.lib.model_data import ModelData, parse_model

MODEL_T = 10.0 * (np.arange(33) / 32) ** 2  # s, finer near the car like a driving model's plan


@dataclass(frozen=True)
class SynthLead:
    x: float
    v: float
    a: float = 0.0
    prob: float = 0.99


def arc(v: float, curvature: float, t: np.ndarray = MODEL_T) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of a path with constant `curvature` driven at speed `v`, at times t."""
    s = v * t
    if abs(curvature) < 1e-9:
        return s, np.zeros_like(s)
    return np.sin(curvature * s) / curvature, (1.0 - np.cos(curvature * s)) / curvature


def fill_model(md, v: float = 20.0, curvature: float = 0.0, lead: SynthLead | None = None,
               frame_id: int = 0, path: tuple[np.ndarray, np.ndarray] | None = None,
               lanes: LaneView | None = None) -> None:
    """Fills a modelV2 builder for a road of constant `curvature` at speed `v` with an optional lead and the ego
    lane's lines (`lanes`; the outer two lines a lane width further out)."""
    x, y = arc(v, curvature) if path is None else path
    md.frameId = frame_id
    md.confidence = 1.0
    md.desiredCurvature = float(curvature)
    pos = md.init("position")
    pos.t, pos.x, pos.y, pos.z = [float(t) for t in MODEL_T], [float(a) for a in x], [float(b) for b in y], \
        [0.0] * len(MODEL_T)
    vel = md.init("velocity")
    vel.t, vel.x = [float(t) for t in MODEL_T], [float(v)] * len(MODEL_T)
    if lanes is not None:
        with np.errstate(invalid="ignore", over="ignore"):  # fuzzed lines may be inf or huge
            width = lanes.left - lanes.right
        ys = (lanes.left + width, lanes.left, lanes.right, lanes.right - width)
        for dst, y_line in zip(md.init("laneLines", 4), ys, strict=True):
            dst.x, dst.y = [float(a) for a in lanes.x], [float(b) for b in y_line]
        md.laneLineProbs = [float(lanes.probs[0]), *(float(p) for p in lanes.probs), float(lanes.probs[1])]
        md.laneLineStds = [float(lanes.stds[0]), *(float(sd) for sd in lanes.stds), float(lanes.stds[1])]
    leads = md.init("leads", 1)
    ld = leads[0]
    if lead is None:
        ld.prob = 0.0
        return
    ld.t = [0.0, 2.0, 4.0]
    ld.x = [float(lead.x)] * 3
    ld.y = [0.0] * 3
    ld.v = [float(lead.v)] * 3
    ld.a = [float(lead.a)] * 3
    ld.prob = float(lead.prob)


def model_msg(**kw) -> messaging.capnp.lib.capnp._DynamicStructBuilder:
    msg = messaging.new_message("modelV2")
    fill_model(msg.modelV2, **kw)
    return msg


def parsed_model(**kw) -> ModelData:
    """ModelData as controlsd and plannerd get it: through a serialized modelV2 (fill_model's arguments)."""
    return parse_model(messaging.log_from_bytes(model_msg(**kw).to_bytes()).modelV2)


def car_state(**kw):
    """A carState reader with these fields (cruise_<field> for cruiseState's)."""
    CS = car.CarState.new_message()
    for k, v in kw.items():
        if k.startswith("cruise_"):
            setattr(CS.cruiseState, k[len("cruise_"):], v)
        else:
            setattr(CS, k, v)
    return CS.as_reader()


def car_params(**overrides):
    """A torque-steered car like a mid-size sedan, with openpilot longitudinal control."""
    CP = car.CarParams.new_message()
    CP.brand = "mock"
    CP.carFingerprint = "SYNTH_SEDAN"
    CP.mass = 1500.0
    CP.wheelbase = 2.7
    CP.centerToFront = 1.2
    CP.steerRatio = 15.0
    CP.steerActuatorDelay = 0.12
    CP.longitudinalActuatorDelay = 0.15
    CP.steerLimitTimer = 1.0
    CP.minEnableSpeed = -1.0
    CP.minSteerSpeed = 0.0
    CP.pcmCruise = True
    CP.openpilotLongitudinalControl = True
    CP.vEgoStopping = 0.25
    CP.vEgoStarting = 0.25
    CP.stopAccel = -2.0
    CP.stoppingDecelRate = 0.8
    CP.startAccel = 1.0
    CP.steerControlType = "torque"
    t = CP.lateralTuning.init("torque")
    t.latAccelFactor = 2.5
    t.friction = 0.1
    t.latAccelOffset = 0.0
    lt = CP.longitudinalTuning
    lt.kpBP, lt.kpV, lt.kiBP, lt.kiV = [0.0], [0.0], [0.0], [0.5]
    for k, v in overrides.items():
        setattr(CP, k, v)
    return CP
