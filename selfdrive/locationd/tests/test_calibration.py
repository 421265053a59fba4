"""The calibration logic (selfdrive/locationd/calibration.py): against an ideal model built from the training
targets' own geometry (fast), and in the simulator with the real driving model in the loop."""

import math
import time

import numpy as np
import pytest

from selfdrive.locationd.calibration import BLOCK_FRAMES, MAX_BLOCKS, MIN_BLOCKS, SETTLE_FRAMES, VP_HOLD, Calibrator
from selfdrive.modeld.constants import T_PATH
from tools.train.targets import rotation_tb, to_b

MOUNT = (math.radians(1.5), math.radians(2.0))    # pitch, yaw of the camera on the car: issue 5's offset
TOL = math.radians(0.3)


def ideal_path(mount, rpy_used, speed: float = 25.0, curvature: float = 0.0) -> np.ndarray:
    """What a perfect model answers: the path driven (straight or on an arc) in the frame the warp's calibration
    believes in, exactly as tools/train/targets.py builds the training targets."""
    t = T_PATH
    if curvature == 0.0:
        x, y = speed * t, np.zeros_like(t)
    else:
        a = speed * t * curvature
        x, y = np.sin(a) / curvature, (1.0 - np.cos(a)) / curvature
    err = (mount[0] - rpy_used[1], mount[1] - rpy_used[2])
    return to_b(np.stack([x, y, np.zeros_like(t)], axis=-1), rotation_tb(mount, err))


def drive(cal: Calibrator, mount, frames: int, **kw) -> list[tuple[float, float, float]]:
    """Feeds `frames` ideal model outputs, each made with the calibration of the moment (as modeld does)."""
    history = []
    for _ in range(frames):
        p = ideal_path(mount, cal.rpy, **kw)
        if cal.feed(p[:, 0], p[:, 1], p[:, 2]):
            history.append(cal.rpy)
    return history


@pytest.mark.parametrize("mount", [MOUNT, (-MOUNT[0], -MOUNT[1]), (math.radians(-3.0), math.radians(4.0))])
def test_ideal_model_converges_to_the_mount(mount):
    cal = Calibrator()
    history = drive(cal, mount, (MAX_BLOCKS + 8) * (BLOCK_FRAMES + 4))
    assert cal.status == "calibrated" and cal.percent == 100
    assert abs(cal.rpy[1] - mount[0]) < math.radians(0.01) and abs(cal.rpy[2] - mount[1]) < math.radians(0.01)
    assert cal.rpy[0] == 0.0
    # calibrated after MIN_BLOCKS blocks, and already close then: each block measures the full remaining error
    assert len(history) >= MIN_BLOCKS
    assert abs(history[MIN_BLOCKS - 1][2] - mount[1]) < math.radians(0.05)


def test_only_straight_fast_driving_counts():
    cal = Calibrator()
    assert drive(cal, MOUNT, 3 * BLOCK_FRAMES, curvature=2e-3) == []       # a bend (500 m radius)
    assert drive(cal, MOUNT, 3 * BLOCK_FRAMES, speed=5.0) == []            # slow: too short a path
    assert cal.valid_blocks == 0 and cal.status == "uncalibrated"
    p = ideal_path(MOUNT, cal.rpy)
    nan = p.copy()
    nan[4, 1] = np.nan
    assert not cal.feed(nan[:, 0], nan[:, 1], nan[:, 2])


def test_vanishing_points_calibrate_and_take_precedence_over_a_bent_model_path():
    """A model whose path says a 3 deg yaw (a bent path on a straight road) while the lines' vanishing point says the
    mount: the vanishing point wins, and the path counts again once no point has been seen for VP_HOLD frames."""
    cal = Calibrator()
    wrong = ideal_path((MOUNT[0], MOUNT[1] + math.radians(3.0)), cal.rpy)
    for _ in range(MIN_BLOCKS * BLOCK_FRAMES):
        cal.feed(wrong[:, 0], wrong[:, 1], wrong[:, 2])
        cal.feed_vp(*MOUNT)
    assert cal.status == "calibrated" and cal.valid_blocks == MIN_BLOCKS
    assert np.allclose(cal.rpy[1:], MOUNT, atol=1e-9)
    # no vanishing point any more (a road without lines): after VP_HOLD path frames the path counts again
    frames = len(cal._frames)
    for _ in range(VP_HOLD):
        assert not cal.feed(wrong[:, 0], wrong[:, 1], wrong[:, 2]) and len(cal._frames) == frames
    for _ in range(SETTLE_FRAMES + 1):  # (and the settling after the last block)
        cal.feed(wrong[:, 0], wrong[:, 1], wrong[:, 2])
    assert len(cal._frames) == frames + 1
    # nonsense is no measurement
    assert not cal.feed_vp(math.nan, 0.0) and not cal.feed_vp(0.0, math.radians(40.0))
    assert len(cal._frames) == frames + 1


def test_confidence_gates_only_once_calibrated():
    # a miscalibrated camera makes the model unsure: an unsure model must still be able to calibrate it
    cal = Calibrator()
    for _ in range(MIN_BLOCKS * (BLOCK_FRAMES + 4)):
        p = ideal_path(MOUNT, cal.rpy)
        cal.feed(p[:, 0], p[:, 1], p[:, 2], confidence=0.01)
    assert cal.status == "calibrated"
    blocks = cal.valid_blocks
    for _ in range(2 * BLOCK_FRAMES):
        p = ideal_path(MOUNT, cal.rpy)
        assert not cal.feed(p[:, 0], p[:, 1], p[:, 2], confidence=0.01)
    assert cal.valid_blocks == blocks


def test_stored_calibration_round_trip_and_bad_records():
    cal = Calibrator()
    drive(cal, MOUNT, MIN_BLOCKS * (BLOCK_FRAMES + 4))
    back = Calibrator.from_bytes(cal.to_bytes())
    assert (back.rpy, back.blocks, back.valid_blocks, back.status) == (cal.rpy, cal.blocks, cal.valid_blocks,
                                                                       cal.status)
    bad = [None, b"", b"\xff\xfe", b"[1, 2]", b"{}", b'{"rpy": [0, 0], "blocks": [], "valid_blocks": 1}',
           b'{"rpy": [0, 0.5, 0], "blocks": [], "valid_blocks": 1}',                # 29 deg: beyond MAX_ANGLE
           b'{"rpy": [0, 0.01, 0], "blocks": [[NaN, 0]], "valid_blocks": 1}',
           b'{"rpy": [0, 0.01, 0], "blocks": [[0.01]], "valid_blocks": 1}',
           b'{"rpy": [0, 0.01, 0], "blocks": [], "valid_blocks": -1}', b"[" * 100_000]
    for raw in bad:
        c = Calibrator.from_bytes(raw)
        assert (c.rpy, c.blocks, c.valid_blocks) == ((0.0, 0.0, 0.0), [], 0), raw


def test_recovers_a_mounting_offset_in_the_simulator():
    """modeld and calibrationd offline, as they run live: the simulator's camera is mounted 1.5 deg pitched and
    2 deg yawed (the model is not told), each frame is warped with the calibration of the moment, the model's
    path feeds the calibration, and each new calibration goes back into the warp."""
    from selfdrive.modeld.fill_msg import confidence
    from selfdrive.modeld.modeld import THREADS, FrameWarper
    from selfdrive.modeld.runner import DEFAULT_MODEL, ModelRunner
    from tools.sim.lib.renderer import Look, Renderer
    from tools.sim.lib.simulation import SimConfig, Simulation

    seconds, seed = 45.0, 300000           # a seed no split of the training data uses
    sim = Simulation(SimConfig(scenario="straight", seed=seed, camera=False))
    renderer = Renderer(pitch=MOUNT[0], yaw=MOUNT[1], look=Look.random(seed))
    warper, runner, cal = FrameWarper(), ModelRunner(DEFAULT_MODEL, THREADS), Calibrator()
    t0 = time.monotonic()
    for k in range(1, round(seconds * 100) + 1):
        sim.step(can=False)
        if k % 5:                          # 20 Hz camera
            continue
        out = runner.run(warper.push(renderer.render(sim.world, sim.state)[:renderer.camera.height]))
        p = out["path"]
        if cal.feed(p[:, 0], p[:, 1], p[:, 2], confidence(out)):
            warper.set_calibration(cal.rpy)
    err = (math.degrees(cal.rpy[1] - MOUNT[0]), math.degrees(cal.rpy[2] - MOUNT[1]))
    print(f"calibration after {seconds:.0f} s: pitch {math.degrees(cal.rpy[1]):.3f} deg (error {err[0]:+.3f}), "
          f"yaw {math.degrees(cal.rpy[2]):.3f} deg (error {err[1]:+.3f}), {cal.valid_blocks} blocks, "
          f"{time.monotonic() - t0:.1f} s wall")
    assert cal.status == "calibrated"
    assert abs(cal.rpy[1] - MOUNT[0]) < TOL, f"pitch off by {err[0]:.3f} deg"
    assert abs(cal.rpy[2] - MOUNT[1]) < TOL, f"yaw off by {err[1]:.3f} deg"
