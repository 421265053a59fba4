import numpy as np

from selfdrive.modeld.constants import T_PATH
from tools.train.targets import CORNER_BOOST, corner_weights


def _arc(k: float, v: float = 12.0) -> np.ndarray:
    """A path driven at v on a circle of curvature k (straight for k = 0), sampled at T_PATH."""
    s = v * T_PATH
    if k == 0.0:
        x, y = s, np.zeros_like(s)
    else:
        x, y = np.sin(k * s) / k, (1.0 - np.cos(k * s)) / k
    return np.stack([x, y, np.zeros_like(s)], axis=-1)


def test_corners_are_drawn_more_often_the_tighter_they_are_up_to_a_bound():
    w = corner_weights(np.stack([_arc(0.0), _arc(0.005), _arc(-0.01), _arc(1 / 57), _arc(-1 / 30)]))
    assert w[0] == 1.0                                   # straight road: the plain weight
    assert 1.0 < w[1] < w[2] < w[3]                      # a left and a right corner alike, tighter more often
    assert w[3] == w[4] == 1.0 + CORNER_BOOST            # suburban's 57 m corners and anything tighter: the bound
