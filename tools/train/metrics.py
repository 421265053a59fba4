"""Driving model metrics on a data split (numpy only; shared by train.py and evaluate.py)."""

import numpy as np

from selfdrive.modeld.constants import X_LINES

DISTANCES = (10.0, 20.0, 40.0)
LEAD_RANGE = 60.0


def path_y_at(path: np.ndarray, dist: float) -> np.ndarray:
    """y of each path (N, T, 2) where it reaches x = dist (NaN if it never does)."""
    out = np.full(len(path), np.nan)
    for i, p in enumerate(path):
        x, y = p[:, 0], p[:, 1]
        if x.max() >= dist:
            k = int(np.argmax(x >= dist))
            if k == 0:
                out[i] = y[0]
            else:
                f = (dist - x[k - 1]) / max(x[k] - x[k - 1], 1e-6)
                out[i] = y[k - 1] + f * (y[k] - y[k - 1])
    return out


def compute(pred: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> dict[str, float]:
    """Median absolute errors (m) of path and lane lines at DISTANCES, lane-line presence, lead distance."""
    m: dict[str, float] = {}
    for d in DISTANCES:
        e = np.abs(path_y_at(pred["path"], d) - path_y_at(truth["path"], d))
        e = e[np.isfinite(e)]
        m[f"path_lat_err_{int(d)}m_median"] = float(np.median(e)) if len(e) else float("nan")
        m[f"path_lat_err_{int(d)}m_p90"] = float(np.percentile(e, 90)) if len(e) else float("nan")
        k = int(np.argmin(np.abs(X_LINES - d)))
        present = truth["lane_present"] > 0.5
        for li, name in ((1, "left"), (2, "right")):
            sel = present[:, li]
            err = np.abs(pred["lanes"][sel, li, k] - truth["lanes"][sel, li, k])
            m[f"lane_{name}_err_{int(d)}m_median"] = float(np.median(err)) if len(err) else float("nan")
    present = truth["lane_present"] > 0.5
    detected = pred["lane_prob"] > 0.5
    m["lane_presence_recall"] = float(detected[present].mean()) if present.any() else float("nan")
    m["lane_presence_false_pos"] = float(detected[~present].mean()) if (~present).any() else float("nan")
    lead = truth["lead"]
    sel = (lead[:, 2] > 0.5) & (lead[:, 0] < LEAD_RANGE)
    rel = np.abs(pred["lead"][sel, 0] - lead[sel, 0]) / lead[sel, 0]
    m["lead_dist_rel_err_median"] = float(np.median(rel)) if len(rel) else float("nan")
    m["lead_dist_within_10pct"] = float((rel <= 0.10).mean()) if len(rel) else float("nan")
    m["lead_count_within_60m"] = int(sel.sum())
    has = lead[:, 2] > 0.5
    m["lead_prob_accuracy"] = float(((pred["lead_prob"][:, 0] > 0.5) == has).mean())
    m["lane_prob_ece"] = expected_calibration_error(reliability(pred["lane_prob"], truth["lane_present"]))
    m["samples"] = int(len(truth["path"]))
    return m


def reliability(prob: np.ndarray, present: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """How often a line is there when the model says p: per probability bin, the samples in it, their mean
    predicted probability and the share of them where the line exists (a calibrated model: the two match)."""
    p, y = np.asarray(prob, float).ravel(), np.asarray(present, float).ravel() > 0.5
    idx = np.minimum((p * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        sel = idx == b
        out.append({"lo": b / bins, "hi": (b + 1) / bins, "n": int(sel.sum()),
                    "predicted": float(p[sel].mean()) if sel.any() else float("nan"),
                    "observed": float(y[sel].mean()) if sel.any() else float("nan")})
    return out


def expected_calibration_error(rel: list[dict[str, float]]) -> float:
    """The sample-weighted mean |predicted - observed| over the reliability bins."""
    n = sum(r["n"] for r in rel)
    return float(sum(r["n"] * abs(r["predicted"] - r["observed"]) for r in rel if r["n"]) / n) if n else float("nan")
