"""Field-by-field comparison of two output streams, and a diff a person can read.

Outputs are compared per service, message by message in publish order. Floats agree within a relative
tolerance (absolute below 1); NaN equals NaN. Ignored fields are dotted paths below the Event
(`logMonoTime`, `controlsState.cumLagMs`): timing, not behaviour. The diff groups differences by field:

    controlsd: carControl.actuators.torque: 812 of 1200 messages differ, first #37 at 2.370 s: 0.1 -> 0.15 (max |d| 0.2)
"""

import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

MAX_FIELDS_SHOWN = 25


@dataclass
class FieldDiff:
    service: str
    path: str
    count: int = 0
    first_index: int = -1
    first_t: float = 0.0
    first_ref: object = None
    first_new: object = None
    max_abs: float = 0.0


@dataclass
class Diff:
    counts: dict[str, tuple[int, int]]   # service -> (reference count, new count), where they differ
    fields: list[FieldDiff]
    compared: dict[str, int]             # service -> messages compared

    def __bool__(self) -> bool:
        return bool(self.counts or self.fields)


def flatten(d, prefix: str = "", out: dict | None = None) -> dict:
    out = {} if out is None else out
    if isinstance(d, dict):
        for k, v in d.items():
            flatten(v, f"{prefix}.{k}" if prefix else k, out)
    elif isinstance(d, list):
        if not d:
            out[prefix] = []
        for i, v in enumerate(d):
            flatten(v, f"{prefix}[{i}]", out)
    else:
        out[prefix] = d
    return out


def equal(a, b, tol: float) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if not isinstance(a, int | float) or not isinstance(b, int | float):
            return False
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= tol * max(1.0, abs(a), abs(b))
    return a == b


def _tree(ev) -> dict:
    d = ev.to_dict()
    d.pop("valid", None)
    return {"valid": ev.valid, **d}


def field_diffs(a, b, tol: float, ignore: tuple[str, ...]) -> Iterator[tuple[str, object, object]]:
    """(path, value in a, value in b) for every field of two Events that differs, the ignored paths left out."""
    fa, fb = flatten(_tree(a)), flatten(_tree(b))
    for path in fa.keys() | fb.keys():
        if path in ignore or any(path.startswith(p + ".") or path.startswith(p + "[") for p in ignore):
            continue
        va, vb = fa.get(path), fb.get(path)
        if not equal(va, vb, tol):
            yield path, va, vb


def compare(ref: list, new: list, tol: float = 1e-5, ignore: tuple[str, ...] = ("logMonoTime",)) -> Diff:
    """Compares Event readers (or anything with which()/to_dict()/logMonoTime/valid) service by service."""
    by_ref, by_new = defaultdict(list), defaultdict(list)
    for ev in ref:
        by_ref[ev.which()].append(ev)
    for ev in new:
        by_new[ev.which()].append(ev)
    t0 = min((ev.logMonoTime for ev in ref), default=0)
    counts, fields, compared = {}, {}, {}
    for service in sorted(set(by_ref) | set(by_new)):
        r, n = by_ref[service], by_new[service]
        if len(r) != len(n):
            counts[service] = (len(r), len(n))
        compared[service] = min(len(r), len(n))
        for i, (a, b) in enumerate(zip(r, n, strict=False)):
            for path, va, vb in field_diffs(a, b, tol, ignore):
                fd = fields.get(path)
                if fd is None:
                    fd = fields[path] = FieldDiff(service, path, first_index=i, first_t=(a.logMonoTime - t0) * 1e-9,
                                                  first_ref=va, first_new=vb)
                fd.count += 1
                if isinstance(va, int | float) and isinstance(vb, int | float):
                    fd.max_abs = max(fd.max_abs, abs(va - vb))
    return Diff(counts, sorted(fields.values(), key=lambda f: (f.first_index, f.path)), compared)


def _short(v) -> str:
    s = f"{v:.6g}" if isinstance(v, float) else repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def format_diff(name: str, diff: Diff) -> list[str]:
    """Readable lines; [] when there is no difference."""
    lines = []
    for service, (nr, nn) in diff.counts.items():
        lines.append(f"{name}: {service}: {nr} messages in the reference, {nn} now")
    for f in diff.fields[:MAX_FIELDS_SHOWN]:
        line = (f"{name}: {f.path}: {f.count} of {diff.compared[f.service]} messages differ, first #{f.first_index} "
                f"at {f.first_t:.3f} s: {_short(f.first_ref)} -> {_short(f.first_new)}")
        lines.append(line + (f" (max |d| {f.max_abs:.4g})" if f.max_abs else ""))
    if len(diff.fields) > MAX_FIELDS_SHOWN:
        lines.append(f"{name}: ... and {len(diff.fields) - MAX_FIELDS_SHOWN} more fields differ")
    return lines
