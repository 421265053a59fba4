"""Evaluates the shipped driving model (ONNX, run as modeld runs it) on the held-out test seeds.

  python -m tools.train.evaluate --data data/driving [data/no_paint ...] --model models/driving.onnx --out out/eval
                                 [--check]

Runs every test sample of gen_data's output through selfdrive/modeld/runner.ModelRunner (onnxruntime, the
threads modeld uses; no torch), compares it with the targets in the frame the warp's calibration believes in
(tools/train/targets.episode_in_b, as training does) and writes:
  OUT/metrics.json  tools/train/metrics.compute over the whole split and per scenario, the acceptance
                    verdicts of issue 5, and how well the predicted path shows the warp's calibration error
                    (what calibrationd lives on: the path's pitch/yaw on straight road vs the sample's error)
  OUT/eval.png      predictions against truth: path lateral offset at 20 m over the samples, lead distance
                    predicted vs true, lane lines / road edges / path of a few samples seen from above
--check makes a missed acceptance bound exit with status 2.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np

from selfdrive.locationd.calibration import MAX_CURVATURE, MIN_SPEED, path_fit
from selfdrive.modeld.constants import OUTPUTS, T_PATH, X_LINES
from selfdrive.modeld.modeld import THREADS
from selfdrive.modeld.runner import ModelError, ModelRunner
from tools.train import metrics
from tools.train.targets import load_splits

# issue 5's acceptance on held-out seeds: (metric, bound, "max" = must be at most / "min" = at least)
ACCEPTANCE = {
    "path lateral error at 20 m, median (m)": ("path_lat_err_20m_median", 0.3, "max"),
    "lane-line presence where lines exist": ("lane_presence_recall", 0.95, "min"),
    "lead distance error within 60 m, median (relative)": ("lead_dist_rel_err_median", 0.10, "max"),
}


def predict(runner: ModelRunner, frames: np.ndarray) -> dict[str, np.ndarray]:
    """Every output for every (2, H, W) sample, stacked on a leading sample axis."""
    outs: dict[str, list[np.ndarray]] = {k: [] for k in OUTPUTS}
    for f in frames:
        for k, v in runner.run(np.ascontiguousarray(f[None])).items():
            outs[k].append(v)
    return {k: np.stack(v) for k, v in outs.items()}


def _subset(d: dict[str, np.ndarray], lo: int, hi: int) -> dict[str, np.ndarray]:
    return {k: v[lo:hi] for k, v in d.items()}


def per_scenario(pred: dict[str, np.ndarray], truth: dict[str, np.ndarray],
                 spans: list[tuple[str, int, int]]) -> dict[str, dict[str, float]]:
    """metrics.compute over the episodes of each scenario (episode files are <scenario>_<seed>.npz)."""
    by: dict[str, list[np.ndarray]] = {}
    for name, lo, hi in spans:
        by.setdefault(name.rsplit("_", 1)[0], []).append(np.arange(lo, hi))
    out = {}
    for scen, idx in sorted(by.items()):
        sel = np.concatenate(idx)
        out[scen] = metrics.compute({k: v[sel] for k, v in pred.items()}, {k: v[sel] for k, v in truth.items()})
    return out


def acceptance(m: dict[str, float]) -> dict[str, dict]:
    out = {}
    for label, (key, bound, kind) in ACCEPTANCE.items():
        v = m.get(key, float("nan"))
        ok = math.isfinite(v) and (v <= bound if kind == "max" else v >= bound)
        out[label] = {"metric": key, "value": v, "bound": bound, "kind": kind, "pass": bool(ok)}
    return out


def calibration_metrics(pred_path: np.ndarray, truth: dict[str, np.ndarray]) -> dict[str, float]:
    """On straight, fast samples (by the true path): the calibration error that calibrationd reads from the
    predicted path (selfdrive/locationd/calibration.path_fit) against the error the sample was warped with.
    gain: least-squares slope of read vs true error (1: calibrationd sees the whole error; 0: it is blind to
    it and can never correct it); err: median |read - true| in degrees over the samples warped with a wrong
    calibration (half the samples are warped right: a model blind to the error would score 0 on those)."""
    rows = []
    for p, t, err in zip(pred_path, truth["path"], truth["calib"], strict=True):
        fit_t = path_fit(t[:, 0], t[:, 1], t[:, 2])
        if fit_t is None or abs(fit_t[2]) >= MAX_CURVATURE or np.interp(1.0, T_PATH, t[:, 0]) <= MIN_SPEED:
            continue
        fit_p = path_fit(p[:, 0], p[:, 1], p[:, 2])
        if fit_p is not None:
            rows.append((*fit_p[:2], *err))
    out: dict[str, float] = {"calib_samples": len(rows)}
    a = np.array(rows, dtype=float).reshape(-1, 4)
    for i, name in enumerate(("pitch", "yaw")):
        read, true = a[:, i], a[:, 2 + i]
        sq = float(np.sum(true * true))
        out[f"calib_{name}_gain"] = float(np.sum(read * true) / sq) if sq > 0 else float("nan")
        off = true != 0
        out[f"calib_{name}_err_deg_median"] = float(np.degrees(np.median(np.abs(read - true)[off]))) \
            if off.any() else float("nan")
    return out


def _json_safe(x):
    # NaN (no lead in range, no lines in a scenario) is not JSON: write null
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def plot(pred: dict[str, np.ndarray], truth: dict[str, np.ndarray], spans: list[tuple[str, int, int]],
         path: str, examples: int = 3) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(16, 10), dpi=80)
    grid = fig.add_gridspec(2, max(examples, 2) + 1)

    ax = fig.add_subplot(grid[0, :-1])
    p20, t20 = metrics.path_y_at(pred["path"], 20.0), metrics.path_y_at(truth["path"], 20.0)
    idx = np.arange(len(t20))
    ax.plot(idx, t20, "k-", lw=1.0, label="truth")
    ax.plot(idx, p20, "C1-", lw=0.8, label="model")
    for k, (name, lo, hi) in enumerate(spans):
        if k % 2:
            ax.axvspan(lo, hi, color="0.93", lw=0)
        ax.text((lo + hi) / 2, 1.0, name, transform=ax.get_xaxis_transform(), rotation=90, va="top", ha="center",
                fontsize=7, color="0.4")
    ax.set(xlabel="test sample (episodes shaded alternately)", ylabel="path y at x = 20 m (m, left +)",
           title="path lateral offset at 20 m")
    ax.legend(loc="lower left")

    ax = fig.add_subplot(grid[0, -1])
    has = truth["lead"][:, 2] > 0.5
    tx, px = truth["lead"][has, 0], pred["lead"][has, 0]
    near = tx < metrics.LEAD_RANGE
    ax.scatter(tx[near], px[near], s=4, c="C0", label=f"< {metrics.LEAD_RANGE:.0f} m")
    ax.scatter(tx[~near], px[~near], s=4, c="0.6", label="further")
    top = float(max(tx.max(initial=10.0), px.max(initial=10.0))) * 1.05
    xs = np.array([0.0, top])
    ax.plot(xs, xs, "k-", lw=0.8)
    ax.fill_between(xs, 0.9 * xs, 1.1 * xs, color="k", alpha=0.1, lw=0, label="±10%")
    ax.set(xlim=(0, top), ylim=(0, top), xlabel="true lead distance (m)", ylabel="predicted (m)",
           title="lead distance (lead present)")
    ax.legend(loc="upper left", fontsize=8)

    # a few samples spread over the split, seen from above (x up, y to the left as in the car frame)
    picks = np.linspace(0, len(t20) - 1, examples).round().astype(int)
    for j, i in enumerate(picks):
        ax = fig.add_subplot(grid[1, j])
        for li in range(truth["lanes"].shape[1]):
            if truth["lane_present"][i, li] > 0.5:
                ax.plot(truth["lanes"][i, li], X_LINES, "k-", lw=1.2)
            if pred["lane_prob"][i, li] > 0.5:
                ax.plot(pred["lanes"][i, li], X_LINES, "C1--", lw=1.2)
        for e in range(truth["edges"].shape[1]):
            ax.plot(truth["edges"][i, e], X_LINES, "k:", lw=1.0)
            ax.plot(pred["edges"][i, e], X_LINES, "C2:", lw=1.0)
        ax.plot(truth["path"][i, :, 1], truth["path"][i, :, 0], "b-", lw=1.5)
        ax.plot(pred["path"][i, :, 1], pred["path"][i, :, 0], "C3--", lw=1.5)
        ax.invert_xaxis()
        ax.set(xlabel="y (m, left +)", ylabel="x (m)", ylim=(0, X_LINES[-1] + 5),
               title=f"sample {i}: lines k/C1, edges k:/C2:, path b/C3", )
        ax.title.set_fontsize(8)
    ax = fig.add_subplot(grid[1, -1])
    ax.axis("off")
    m = metrics.compute(pred, truth)
    lines = [f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}" for k, v in m.items()]
    ax.text(0.0, 1.0, "\n".join(lines), va="top", family="monospace", fontsize=7)
    fig.suptitle("driving model on the test seeds: solid = truth, dashed = model")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def report(m: dict[str, float], scen: dict[str, dict[str, float]], acc: dict[str, dict]) -> str:
    out = [f"{m['samples']} test samples"]
    out.append(f"  {'':32s} {'10 m':>8s} {'20 m':>8s} {'40 m':>8s}")
    for key, label in (("path_lat_err_{}m_median", "path lateral error, median"),
                       ("path_lat_err_{}m_p90", "path lateral error, p90"),
                       ("lane_left_err_{}m_median", "left line error, median"),
                       ("lane_right_err_{}m_median", "right line error, median")):
        vals = " ".join(f"{m[key.format(int(d))]:8.3f}" for d in metrics.DISTANCES)
        out.append(f"  {label + ' (m)':32s} {vals}")
    out.append(f"  lane presence: recall {m['lane_presence_recall']:.3f}, false positives "
               f"{m['lane_presence_false_pos']:.3f}, calibration error (ECE) {m['lane_prob_ece']:.3f}")
    out.append(f"  lead within {metrics.LEAD_RANGE:.0f} m ({m['lead_count_within_60m']} samples): median relative "
               f"error {m['lead_dist_rel_err_median']:.3f}, within 10% {m['lead_dist_within_10pct']:.3f}; "
               f"presence accuracy {m['lead_prob_accuracy']:.3f}")
    out.append(f"  calibration error read from the path ({m['calib_samples']} straight samples): pitch gain "
               f"{m['calib_pitch_gain']:.2f}, median error {m['calib_pitch_err_deg_median']:.2f} deg; yaw gain "
               f"{m['calib_yaw_gain']:.2f}, median error {m['calib_yaw_err_deg_median']:.2f} deg")
    for name in ("pitch", "yaw"):
        if not m[f"calib_{name}_gain"] > 0.5:
            out.append(f"  WARNING: the path barely shows a {name} calibration error: calibrationd cannot correct it")
    out.append(f"  {'per scenario':14s} {'n':>5s} {'path20 med':>10s} {'lane rec':>9s} {'lead rel':>9s}")
    for name, s in scen.items():
        out.append(f"  {name:14s} {s['samples']:5d} {s['path_lat_err_20m_median']:10.3f} "
                   f"{s['lane_presence_recall']:9.3f} {s['lead_dist_rel_err_median']:9.3f}")
    out.append("acceptance (issue 5):")
    for label, a in acc.items():
        sign = "<=" if a["kind"] == "max" else ">="
        out.append(f"  {'PASS' if a['pass'] else 'FAIL'}  {label}: {a['value']:.3f} (needs {sign} {a['bound']})")
    return "\n".join(out)


def plot_reliability(rel: list[dict[str, float]], path: str) -> None:
    """The lane-line probability's reliability diagram: observed share of lines against the predicted one."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=80)
    rows = [r for r in rel if r["n"]]
    ax.plot([0, 1], [0, 1], "k-", lw=0.8, label="calibrated")
    ax.plot([r["predicted"] for r in rows], [r["observed"] for r in rows], "C1o-", label="model")
    for r in rows:
        ax.annotate(str(r["n"]), (r["predicted"], r["observed"]), fontsize=7, xytext=(3, -9),
                    textcoords="offset points")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="predicted lane_prob (bin mean)", ylabel="share of lines that exist",
           title="lane-line probability: reliability (n per bin)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def evaluate(data: str | list[str], model: str, out: str, threads: int = THREADS, split: str = "test") -> dict:
    """Evaluates `model` on a split of one or more gen_data folders; writes OUT/metrics.json, OUT/eval.png and
    OUT/reliability.png and returns the metrics dict."""
    data = [data] if isinstance(data, str) else list(data)
    truth, spans = load_splits(data, split)
    try:
        runner = ModelRunner(model, threads)
    except ModelError as e:
        raise SystemExit(f"evaluate: {e}") from None
    t0 = time.monotonic()
    pred = predict(runner, truth["frames"])
    run_s = time.monotonic() - t0
    m = {**metrics.compute(pred, truth), **calibration_metrics(pred["path"], truth)}
    scen = per_scenario(pred, truth, spans)
    acc = acceptance(m)
    os.makedirs(out, exist_ok=True)
    rel = metrics.reliability(pred["lane_prob"], truth["lane_present"])
    result = {"model": os.path.abspath(model), "data": [os.path.abspath(d) for d in data], "split": split,
              "episodes": [name for name, _, _ in spans], "metrics": m, "per_scenario": scen, "acceptance": acc,
              "lane_prob_reliability": rel,
              "inference_ms_per_sample": 1e3 * run_s / max(len(truth["frames"]), 1), "threads": threads}
    with open(os.path.join(out, "metrics.json"), "w") as fh:
        json.dump(_json_safe(result), fh, indent=1, allow_nan=False)
    plot(pred, truth, spans, os.path.join(out, "eval.png"))
    plot_reliability(rel, os.path.join(out, "reliability.png"))
    print(report(m, scen, acc))
    print(f"wrote {os.path.join(out, 'metrics.json')}, {os.path.join(out, 'eval.png')} and "
          f"{os.path.join(out, 'reliability.png')}")
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", default=["data/driving"],
                   help="gen_data output folders (their test/ splits are evaluated together)")
    p.add_argument("--model", default="models/driving.onnx")
    p.add_argument("--out", default="out/eval")
    p.add_argument("--threads", type=int, default=THREADS, help="onnxruntime intra-op threads (modeld's)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--check", action="store_true", help="exit status 2 when an acceptance bound is missed")
    a = p.parse_args(argv)
    res = evaluate(a.data, a.model, a.out, a.threads, a.split)
    if a.check and not all(v["pass"] for v in res["acceptance"].values()):
        sys.exit(2)


if __name__ == "__main__":
    main()
