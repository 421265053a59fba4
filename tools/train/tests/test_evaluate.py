"""tools/train/evaluate.py on a few short simulator episodes (built here: CI has no data/driving)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from selfdrive.modeld.runner import DEFAULT_MODEL
from selfdrive.modeld.tests.onnx_models import contract_outputs, write_model
from tools.train import evaluate, metrics
from tools.train.gen_data import not_road_episode, run_episode
from tools.train.targets import episode_in_b

# seeds outside every gen_data split (train 0.., val 100000.., test 200000..2000xx)
EPISODES = (("suburban", 300000), ("lead_brake", 300000))
SECONDS = 4.5     # 15 samples each


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("driving")
    os.makedirs(root / "test")
    for scen, seed in EPISODES:
        np.savez(root / "test" / f"{scen}_{seed}.npz", **run_episode("test", scen, seed, SECONDS))
    return str(root)


def _episodes(data: str, to_b: bool) -> list[dict[str, np.ndarray]]:
    out = []
    for scen, seed in EPISODES:
        d = dict(np.load(os.path.join(data, "test", f"{scen}_{seed}.npz")))
        out.append(episode_in_b(d) if to_b else d)
    return out


def _miscalibrated_copy(data: str, dst) -> str:
    """The episodes with every sample marked as warped with a calibration 1 deg pitch / 2 deg yaw off, so the
    believed-frame targets differ clearly from the true ones (the frames no longer match: fine for a model
    with constant outputs)."""
    os.makedirs(dst / "test")
    for scen, seed in EPISODES:
        d = dict(np.load(os.path.join(data, "test", f"{scen}_{seed}.npz")))
        d["calib"][:] = np.radians([1.0, 2.0])
        np.savez(dst / "test" / f"{scen}_{seed}.npz", **d)
    return str(dst)


def _expected_constant(eps: list[dict[str, np.ndarray]]) -> tuple[float, float]:
    """Path error at 20 m and lead relative error of contract_outputs() (straight ahead on y = 0, lead at 50 m),
    computed here without tools/train/metrics."""
    const = contract_outputs()
    path_err = [abs(np.interp(20.0, p[:, 0], p[:, 1])) for e in eps for p in e["path"]]
    lead_x = float(const["lead"][0, 0])
    lead = np.concatenate([e["lead"] for e in eps])
    sel = (lead[:, 2] > 0.5) & (lead[:, 0] < 60.0)
    return float(np.median(path_err)), float(np.median(np.abs(lead_x - lead[sel, 0]) / lead[sel, 0]))


def test_cli_without_torch_scores_a_known_model_against_targets_in_the_believed_frame(data, tmp_path):
    data = _miscalibrated_copy(data, tmp_path / "data")
    model = write_model(str(tmp_path / "const.onnx"), {**contract_outputs(), "lane_prob": np.full((1, 4), 0.9,
                                                                                                   np.float32)})
    out = tmp_path / "eval"
    # torch is installed here (train extra) but evaluate must not need it: make importing it fail
    code = ("import sys; sys.modules['torch'] = None; from tools.train.evaluate import main; "
            f"main(['--data', {data!r}, '--model', {model!r}, '--out', {str(out)!r}])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "path lateral error, median" in r.stdout and "acceptance" in r.stdout

    res = json.loads((out / "metrics.json").read_text())
    m = res["metrics"]
    n = len(EPISODES) * round(SECONDS / 0.3)
    assert m["samples"] == n
    assert res["episodes"] == sorted(f"{s}_{seed}" for s, seed in EPISODES)
    path20, lead_rel = _expected_constant(_episodes(data, to_b=True))
    assert m["path_lat_err_20m_median"] == pytest.approx(path20, abs=1e-4)
    assert m["lead_dist_rel_err_median"] == pytest.approx(lead_rel, abs=1e-5)
    assert m["lane_presence_recall"] == 1.0
    # the targets must be the believed-frame ones: in the true frame the same predictions score differently
    path20_t, _ = _expected_constant(_episodes(data, to_b=False))
    assert abs(path20_t - path20) > 0.3
    acc = res["acceptance"]
    lane = acc["lane-line presence where lines exist"]
    assert lane["pass"] and lane["value"] == 1.0
    assert acc["lead distance error within 60 m, median (relative)"]["pass"] == (lead_rel <= 0.10)
    assert set(res["per_scenario"]) == {s for s, _ in EPISODES}
    assert res["per_scenario"]["suburban"]["samples"] == n // 2

    png = (out / "eval.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_shipped_model_beats_a_constant_guess(data, tmp_path):
    const = evaluate.evaluate(data, write_model(str(tmp_path / "const.onnx"), contract_outputs()), str(tmp_path / "c"))
    real = evaluate.evaluate(data, DEFAULT_MODEL, str(tmp_path / "r"))
    c, r = const["metrics"], real["metrics"]
    # the first seconds of a drive are nearly straight, where guessing straight ahead is a fair path: the lane
    # lines tell a model that sees the road from one that does not (or that is fed the wrong frames)
    for key in ("lane_left_err_20m_median", "lane_right_err_20m_median"):
        assert r[key] < 0.6 * c[key], key
    assert r["path_lat_err_20m_median"] <= 0.3
    assert r["lane_presence_recall"] >= 0.95


def test_missing_data_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match=r"nope does not exist.*gen_data"):
        evaluate.main(["--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    os.makedirs(tmp_path / "empty" / "test")
    with pytest.raises(SystemExit, match=r"no episodes in .*empty/test.*gen_data"):
        evaluate.main(["--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()


def test_missing_model_is_a_clear_error(data, tmp_path):
    with pytest.raises(SystemExit, match="model file not found"):
        evaluate.main(["--data", data, "--model", str(tmp_path / "none.onnx"), "--out", str(tmp_path / "o")])


def test_check_fails_a_model_that_misses_the_acceptance(data, tmp_path):
    # lane_prob 0.5 everywhere: no line is ever detected, so lane presence fails
    model = write_model(str(tmp_path / "const.onnx"), contract_outputs())
    out = str(tmp_path / "o")
    evaluate.main(["--data", data, "--model", model, "--out", out])       # without --check: a report only
    with pytest.raises(SystemExit) as e:
        evaluate.main(["--data", data, "--model", model, "--out", out, "--check"])
    assert e.value.code == 2


def test_calibration_metrics_see_what_calibrationd_sees(data):
    eps = _episodes(data, to_b=True)
    truth = {k: np.concatenate([e[k] for e in eps]) for k in ("path", "calib")}
    assert (truth["calib"] != 0).any(axis=1).any(), "the episodes have miscalibrated samples"
    exact = evaluate.calibration_metrics(truth["path"], truth)
    assert exact["calib_samples"] > 5
    assert exact["calib_pitch_gain"] == pytest.approx(1.0, abs=0.02)
    assert exact["calib_pitch_err_deg_median"] < 0.01
    assert exact["calib_yaw_gain"] == pytest.approx(1.0, abs=0.1)     # the driver's own wander shows in yaw
    # a path that never leaves the road (z = 0) hides any pitch error: gain 0, the whole error missed
    flat = truth["path"].copy()
    flat[..., 2] = 0.0
    blind = evaluate.calibration_metrics(flat, truth)
    assert blind["calib_pitch_gain"] == 0.0
    off = truth["calib"][:, 0] != 0
    assert blind["calib_pitch_err_deg_median"] > 0.5 * np.degrees(np.median(np.abs(truth["calib"][off, 0])))


def test_reliability_tells_a_calibrated_probability_from_an_overconfident_one():
    rng = np.random.default_rng(0)
    p = rng.random(20000)
    calibrated = metrics.reliability(p, rng.random(20000) < p)
    assert metrics.expected_calibration_error(calibrated) < 0.02
    assert all(abs(r["predicted"] - r["observed"]) < 0.05 for r in calibrated)
    sure = metrics.reliability(np.full(1000, 0.99), np.arange(1000) % 2 == 0)   # always sure, right half the time
    assert metrics.expected_calibration_error(sure) == pytest.approx(0.49, abs=0.01)
    assert sum(r["n"] for r in sure) == 1000 and sure[-1]["n"] == 1000


def test_several_folders_are_evaluated_together_with_pictures_of_no_road(data, tmp_path):
    no_road = tmp_path / "not_road"
    os.makedirs(no_road / "test")
    np.savez(no_road / "test" / "not_road_207000.npz", **not_road_episode(207000, 3.0))
    model = write_model(str(tmp_path / "const.onnx"), contract_outputs())
    res = evaluate.evaluate([data, str(no_road)], model, str(tmp_path / "o"))
    n_road = sum(len(e["frames"]) for e in _episodes(data, to_b=False))
    assert res["metrics"]["samples"] == n_road + 10
    assert res["per_scenario"]["not_road"]["samples"] == 10
    # lane_prob 0.5 everywhere: every sample sits in one bin, where lines exist on the road samples only
    busy = [r for r in res["lane_prob_reliability"] if r["n"]]
    assert len(busy) == 1 and busy[0]["n"] == 4 * (n_road + 10) and 0.0 < busy[0]["observed"] < 1.0
    png = (tmp_path / "o" / "reliability.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
