"""Plots fields of a route over time into a PNG.

    python -m tools.plot.plot ROUTE carState.vEgo carState.steeringAngleDeg -o out.png
    python -m tools.plot.plot ROUTE/0 modelV2.laneLineProbs[1] 'modelV2.position.y[-1]' -o lanes.png

A field is a dotted path that starts with the service: struct fields by name, list elements by index
(negative counts from the end). Booleans plot as 0/1 and enums as their number (the names go on the
axis). Time is seconds from the route's first message; one panel per field, sharing the time axis.
ROUTE is anything LogReader opens: a route name, `name/2:4`, a folder or a log file.
Draws with matplotlib's Agg backend (no display needed).
"""

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import capnp
import numpy as np

from selfdrive.loggerd.logreader import LogError, LogReader, ToolArgumentParser, output_file

_STEP_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[-?\d+\])*)$")


class FieldError(ValueError):
    """A field path that does not parse, or names nothing in the schema."""


@dataclass(frozen=True)
class FieldPath:
    text: str
    service: str
    steps: tuple  # str (struct field) or int (list index)

    @staticmethod
    def parse(text: str) -> "FieldPath":
        steps: list = []
        for part in text.split("."):
            m = _STEP_RE.match(part)
            if m is None:
                raise FieldError(f"bad field path {text!r} at {part!r}: use service.field.list[3].field")
            steps.append(m.group(1))
            steps.extend(int(i) for i in re.findall(r"-?\d+", m.group(2)))
        if not isinstance(steps[0], str):
            raise FieldError(f"bad field path {text!r}: it starts with the service")
        return FieldPath(text, steps[0], tuple(steps))

    def get(self, event):
        """The value at this path in one Event, or None where a list is too short for the index."""
        v = event
        for s in self.steps:
            if isinstance(s, int):
                if not -len(v) <= s < len(v):
                    return None
                v = v[s]
            else:
                try:
                    v = getattr(v, s)
                except (AttributeError, capnp.KjException) as e:
                    raise FieldError(f"{self.text}: no field {s!r} ({str(e).splitlines()[0][:120]})") from None
        return v


@dataclass
class Series:
    path: FieldPath
    t: np.ndarray         # s from the route's first message
    y: np.ndarray         # float; NaN where the message had no such element
    labels: dict[int, str]  # enum number -> name, when the field is an enum


def _number(v, labels: dict[int, str]) -> float:
    if v is None:
        return np.nan
    if isinstance(v, bool | int | float):
        return float(v)
    if hasattr(v, "raw"):  # an enum
        labels[int(v.raw)] = str(v)
        return float(v.raw)
    raise FieldError(f"not a number, bool or enum: {type(v).__name__}; pick a leaf field")


def read_series(source: str, fields: Sequence[str]) -> tuple[list[Series], LogReader]:
    """Every field's values over time; raises FieldError for a bad path, LogError for a bad source."""
    paths = [FieldPath.parse(f) for f in fields]
    from cereal.services import SERVICES
    for p in paths:
        if p.service not in SERVICES:
            raise FieldError(f"{p.text}: unknown service {p.service!r}")
    lr = LogReader(source)
    wanted = {p.service for p in paths}
    rows: dict[str, list] = {p.text: [] for p in paths}
    labels: dict[str, dict[int, str]] = {p.text: {} for p in paths}
    t0 = None
    for ev in lr:
        t0 = ev.logMonoTime if t0 is None else t0
        s = ev.which()
        if s not in wanted:
            continue
        t = (ev.logMonoTime - t0) * 1e-9
        for p in paths:
            if p.service == s:
                rows[p.text].append((t, _number(p.get(ev), labels[p.text])))
    out = []
    for p in paths:
        arr = np.array(rows[p.text], dtype=np.float64).reshape(-1, 2)
        out.append(Series(p, arr[:, 0], arr[:, 1], labels[p.text]))
    return out, lr


def plot(series: Sequence[Series], out: str, title: str = "") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(series), 1, sharex=True, squeeze=False,
                             figsize=(11, 1.2 + 2.2 * len(series)), constrained_layout=True)
    for ax, s in zip(axes[:, 0], series, strict=True):
        if len(s.t):
            ax.plot(s.t, s.y, lw=1.0, drawstyle="steps-post" if s.labels else "default")
        else:
            ax.text(0.5, 0.5, "no messages", transform=ax.transAxes, ha="center", va="center", color="gray")
        ax.set_ylabel(s.path.text, fontsize=9)
        if s.labels:
            ax.set_yticks(sorted(s.labels), [s.labels[k] for k in sorted(s.labels)])
        ax.grid(True, alpha=0.3)
    axes[-1, 0].set_xlabel("time (s)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Exit status 0: the PNG is written; 2: refused (a bad path, source or -o, or a field without messages), one
    line on stderr and nothing written."""
    ap = ToolArgumentParser(prog="python -m tools.plot.plot", description=__doc__.splitlines()[0],
                            epilog="fields: service.field[.field][index], e.g. carState.vEgo modelV2.laneLineProbs[1]")
    ap.add_argument("route", help="route name, name/segments, folder or log file")
    ap.add_argument("fields", nargs="+", help="dotted field paths")
    ap.add_argument("-o", "--out", type=output_file(".png"), default="plot.png",
                    help="PNG to write, in a folder that exists (default plot.png)")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        series, lr = read_series(args.route, args.fields)
    except (FieldError, LogError) as e:
        print(f"plot: {e}", file=sys.stderr)
        return 2
    empty = [s.path for s in series if not len(s.t)]
    if empty:  # an empty panel looks like a flat signal at a glance: say so instead
        print(f"plot: no messages in {args.route} for {', '.join(p.text for p in empty)} "
              f"(no {', '.join(sorted({p.service for p in empty}))}); nothing written", file=sys.stderr)
        return 2
    for path, what in lr.problems:
        print(f"plot: problem in {path}: {what}", file=sys.stderr)
    for s in series:
        finite = s.y[np.isfinite(s.y)]
        rng = f"{finite.min():.4g}..{finite.max():.4g}" if len(finite) else "no values"
        print(f"{s.path.text}: {len(s.t)} samples, {rng}")
    plot(series, args.out, title=args.route)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
