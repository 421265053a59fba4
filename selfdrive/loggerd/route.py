"""Finding recorded routes: `<routes_dir>/<route name>/<segment number>/{rlog,qlog}.zst`.

A route is named by its folder name (resolved under common.paths.routes_dir()) or given as a path.
`"<route>/3"` picks segment 3, `"<route>/2:4"` segments 2 and 3 (a Python-style half-open range by
segment number; either end may be left out), `"<route>/-1"` the last segment.
"""

import json
import os
import re
from dataclasses import dataclass

from common.paths import routes_dir

LOG_TYPES = ("rlog", "qlog")
_SELECTOR_RE = re.compile(r"^(-?\d+|\d*:\d*)$")


class RouteError(ValueError):
    """A route or segment that does not exist, or a selector that cannot be read."""


def is_segment_name(name: str) -> bool:
    # ASCII only: str.isdigit() also accepts "²" (int() refuses it) and other scripts' digits ("٣" is int 3)
    return name.isascii() and name.isdigit()


@dataclass(frozen=True, order=True)
class Segment:
    number: int
    path: str

    def log_path(self, log_type: str = "rlog") -> str:
        if log_type not in LOG_TYPES:
            raise ValueError(f"log_type must be one of {LOG_TYPES}, got {log_type!r}")
        return os.path.join(self.path, f"{log_type}.zst")


class Route:
    """A route folder and its segments, in segment-number order (`.segments`)."""

    def __init__(self, name_or_path: str | os.PathLike):
        s = os.fspath(name_or_path).rstrip("/") or "/"
        path = s if os.path.isdir(s) else os.path.join(routes_dir(), s)
        if not os.path.isdir(path):
            raise RouteError(f"no route {s!r}: not a folder, nor a route under {routes_dir()}")
        self.path = os.path.abspath(path)
        self.name = os.path.basename(self.path)
        self.segments = sorted(Segment(int(d), os.path.join(self.path, d)) for d in os.listdir(self.path)
                               if is_segment_name(d) and os.path.isdir(os.path.join(self.path, d)))

    def __repr__(self) -> str:
        return f"Route({self.name!r}, {len(self.segments)} segments)"

    def meta(self) -> dict:
        """What loggerd wrote about the route (route.json); {} when it is missing or unreadable."""
        try:
            return self.read_meta()
        except RouteError:
            return {}

    def read_meta(self) -> dict:
        """route.json; {} when the route has none (made by hand), RouteError when it is there but unreadable: a tool
        that acts on what the route recorded (how its daemons were paced) must not guess instead."""
        path = os.path.join(self.path, "route.json")
        try:
            with open(path, "rb") as f:
                meta = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, RecursionError) as e:  # RecursionError: JSON nested deeper than Python recurses
            raise RouteError(f"{path}: unreadable ({type(e).__name__}: {str(e)[:200]})") from None
        if not isinstance(meta, dict):
            raise RouteError(f"{path}: unreadable (a JSON {type(meta).__name__}, not an object)")
        return meta

    def select(self, selector: str | None = None) -> list[Segment]:
        """The segments a selector names: None (all), "3", "-1", "2:4", "2:", ":4". Raises RouteError."""
        if selector is None or selector == "":
            return list(self.segments)
        if not _SELECTOR_RE.match(selector):
            raise RouteError(f"bad segment selector {selector!r} for route {self.name}: use N, -N or A:B")
        if ":" in selector:
            a, b = selector.split(":")
            lo = int(a) if a else 0
            hi = int(b) if b else None
            return [seg for seg in self.segments if seg.number >= lo and (hi is None or seg.number < hi)]
        n = int(selector)
        if n < 0:
            if -n > len(self.segments):
                raise RouteError(f"route {self.name} has {len(self.segments)} segments; no segment {n}")
            return [self.segments[n]]
        for seg in self.segments:
            if seg.number == n:
                return [seg]
        raise RouteError(f"route {self.name} has no segment {n} (has {[s.number for s in self.segments]})")


def split_selector(source: str) -> tuple[str, str | None]:
    """`"route/2:4"` -> ("route", "2:4"); a source without a selector -> (source, None)."""
    head, sep, tail = source.rstrip("/").rpartition("/")
    if sep and head and _SELECTOR_RE.match(tail) and not os.path.isdir(source):
        return head, tail
    return source, None


def route_of(source: str | os.PathLike) -> Route | None:
    """The route a source belongs to (a route name or folder with or without a selector, a segment folder, a log
    file in one), or None when it is not inside a route (a folder without segments is not one)."""
    s = os.fspath(source)
    if os.path.isfile(s):
        s = os.path.dirname(os.path.abspath(s))
    if os.path.isdir(s) and is_segment_name(os.path.basename(s.rstrip("/"))):
        s = os.path.dirname(os.path.abspath(s.rstrip("/")))
    try:
        r = Route(split_selector(s)[0])
    except RouteError:
        return None
    return r if r.segments else None  # any folder opens as a Route; one without segments is not a route
