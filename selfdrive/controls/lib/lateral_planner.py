"""The lateral plan: from each model frame to the curvature the car should drive, low-passed between frames.

Pursuit of the lane centre where the model sees the ego lane's lines, else its path, compensated for the steering
delay (drive_helpers.desired_curvature), then low-passed once per model frame (drive_helpers.PLAN_SMOOTH_S). No rate
limit here: controlsd limits the curvature it commands once, at its own 100 Hz, towards this target.
"""

from common.realtime import DT_MDL
from selfdrive.controls.lib.drive_helpers import desired_curvature, finite_or, smooth_curvature
from selfdrive.controls.lib.model_data import ModelData

DEFAULT_STEER_DELAY = 0.1  # s, for a carParams that does not say


class LateralPlanner:
    def __init__(self, steer_delay: float):
        self.steer_delay = finite_or(steer_delay, DEFAULT_STEER_DELAY)
        self.curvature = 0.0  # 1/m, the target: held between model frames, and when the model stops coming

    def update(self, model: ModelData, v_ego: float, curvature_now: float) -> float:
        """Takes one new model frame; `curvature_now` is what the car drives now (the lane pursuit predicts where that
        takes it over the delay). Returns the new target."""
        k = desired_curvature(model.x, model.y, model.desired_curvature, v_ego, self.steer_delay, model.geometry,
                              model.lanes, curvature_now)
        # one step per frame, not per call's wall time: the filter's constant stays a property of the model's rate,
        # as it was tuned (a late frame on a loaded machine must not be taken as a longer interval)
        self.curvature = smooth_curvature(self.curvature, k, DT_MDL)
        return self.curvature
