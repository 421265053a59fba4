"""The driving model's contract: its input frame, its output layout and the sample grids of each head.
Shared by modeld, calibrationd and the training tools (no torch here)."""

import numpy as np

# model frame: a virtual camera at the road camera's position, aligned with the car and pitched down a little
# so that the road, not the sky, fills most of the picture (horizon near row 38 of 128)
MODEL_W, MODEL_H = 256, 128
MODEL_FOCAL = 300.0
MODEL_PITCH = np.radians(5.0)
INPUT_NAME = "frames"
INPUT_SHAPE = (1, 2, MODEL_H, MODEL_W)   # uint8 Y of the previous and the current frame, 50 ms apart

T_PATH = np.arange(0.0, 6.01, 0.5)                                   # s, plan samples
X_LINES = np.array([5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0])  # m ahead, lane line / edge samples
NUM_LINES, NUM_EDGES = 4, 2   # left-left, left, right, right-right; left edge, right edge
LEAD_MAX = 100.0              # m: a lead further than this is no lead for training

# name -> shape of each output (batch 1). Everything is in the car frame as the calibration used for the warp
# believes it to be: with a wrong calibration the path of a car driving straight points off by the error
# (yaw: its y grows with x; pitch: its z does), which is what calibrationd measures.
OUTPUTS: dict[str, tuple[int, ...]] = {
    "path": (1, len(T_PATH), 3),            # x, y, z in m (calibrated car frame)
    "path_std": (1, len(T_PATH), 3),
    "lanes": (1, NUM_LINES, len(X_LINES)),  # y in m at X_LINES
    "lanes_std": (1, NUM_LINES, len(X_LINES)),
    "lane_prob": (1, NUM_LINES),            # 0..1
    "edges": (1, NUM_EDGES, len(X_LINES)),
    "edges_std": (1, NUM_EDGES, len(X_LINES)),
    "lead": (1, 2),                         # x (m ahead of the camera), v (m/s absolute)
    "lead_std": (1, 2),
    "lead_prob": (1, 1),
    "curvature": (1, 1),                    # 1/m, desired
}
CAMERA_HEIGHT = 1.22   # m, the road camera above the road (the simulator's and comma2k19's)
