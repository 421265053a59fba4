"""The drive report's picture: speed, lead gap, lateral error and steering over simulated time (matplotlib Agg).

Engaged spans are shaded green on every panel, disengagements are red lines, collisions and lane departures
black/orange marks, so the picture tells the same story as the report's text.
"""

import matplotlib

matplotlib.use("Agg")  # no display: files only (before pyplot is imported)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ENGAGED = "#2ca02c"


def _spans(t: np.ndarray, flags: np.ndarray) -> list[tuple[float, float]]:
    out, start = [], None
    for k, f in enumerate(flags):
        if f and start is None:
            start = t[k - 1] if k else 0.0
        elif not f and start is not None:
            out.append((start, t[k - 1]))
            start = None
    if start is not None:
        out.append((start, t[-1]))
    return out


def plot_report(r, path_png: str) -> None:
    """`r`: a DriveReport with its trace."""
    tr = r.trace
    if tr is None:
        raise ValueError("this report has no trace to plot (it was not built from a route)")
    fig, axes = plt.subplots(4, 1, figsize=(11, 9), sharex=True)
    ax_v, ax_gap, ax_lat, ax_steer = axes
    ax_v.plot(tr.t, tr.v * 3.6, label="speed")
    if np.isfinite(tr.set_speed).any():
        ax_v.plot(tr.t, tr.set_speed * 3.6, "--", color="gray", label="set speed")
    if np.isfinite(tr.lead_v).any():
        ax_v.plot(tr.t, tr.lead_v * 3.6, ":", color="purple", label="lead speed")
    ax_v.set_ylabel("km/h")
    ax_v.legend(loc="upper right", fontsize=8)

    ax_gap.plot(tr.t, tr.lead_d, color="purple", label="gap to same-lane lead (m)")
    ax_gap.set_ylabel("lead gap (m)")
    tg = ax_gap.twinx()
    tg.plot(tr.t, tr.time_gap(), color="tab:orange", lw=0.8, label="time gap (s)")
    tg.axhline(0.8, color="tab:orange", ls=":", lw=0.8)
    tg.set_ylabel("time gap (s)")
    tg.set_ylim(0, 5)
    if not np.isfinite(tr.lead_d).any():
        ax_gap.text(0.5, 0.5, "no lead in the same lane", transform=ax_gap.transAxes, ha="center", color="gray")

    ax_lat.plot(tr.t, tr.lat, label="offset to lane centre (left +)")
    for y in (-0.25, 0.25):
        ax_lat.axhline(y, color="gray", ls=":", lw=0.8)
    ax_lat.set_ylabel("lateral error (m)")

    ax_steer.plot(tr.t, tr.steer, color="tab:brown")
    ax_steer.set_ylabel("steering (deg)")
    ax_steer.set_xlabel("simulated time (s)")

    for ax in axes:
        for a, b in _spans(tr.t, tr.engaged):
            ax.axvspan(a, b, color=ENGAGED, alpha=0.12, lw=0)
        for d in r.disengagements:
            ax.axvline(d.t, color="red", lw=0.8)
        for t in r.collision_times:
            ax.axvline(t, color="black", lw=1.5)
        for t in r.lane_departure_times:
            ax.axvline(t, color="tab:orange", lw=1.2, ls="--")
        ax.grid(alpha=0.3)
    short = r.verdict()
    fig.suptitle(f"{r.scenario} seed {r.seed}: {r.minutes:.2f} min, engaged {r.engaged_minutes:.2f} min, "
                 f"{len(r.disengagements)} disengagements, {r.collisions} collisions, {r.lane_departures} departures"
                 + ("\n" + "; ".join(short) if short else "\nmeets the closed-loop thresholds"), fontsize=10)
    ax_v.text(0.0, 1.02, "green: engaged   red: disengagement   black: collision   orange dashed: lane departure",
              transform=ax_v.transAxes, fontsize=7, color="gray")
    fig.tight_layout()
    fig.savefig(path_png, dpi=90)
    plt.close(fig)
