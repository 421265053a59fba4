"""Roads for the simulator: a reference line built from straight, clothoid and constant-radius sections,
lanes beside it, markings, road edges and a gentle elevation profile, all generated from a seed.

Frames and conventions (SI units everywhere):
- World frame: x east, y north, z up; yaw counter-clockwise from +x.
- A road point is (s, d): arc length s along the reference line and lateral offset d, left positive.
- The reference line is the road's centre line: the boundary between our carriageway (to its right) and
  the oncoming lane (to its left, suburban roads only). Our lanes are numbered from it: lane 0 is the
  leftmost lane of our direction, lane num_lanes-1 the rightmost; lane -1 is the oncoming lane.
- Curvature is positive for left turns.

The reference line is tabulated every DS metres with section boundaries on the grid, so within one cell
the curvature is exactly linear and the heading exactly quadratic in s; positions between samples come
from Simpson's rule on that heading (error far below a millimetre). Headings stay within ±MAX_HEADING of
+x, so x grows strictly along the road: `project` only looks at samples whose x is near the query.
"""

import bisect
import math
from dataclasses import dataclass

import numpy as np

DS = 0.5                          # m, sample spacing of the reference line (section lengths are multiples)
MAX_HEADING = math.radians(70.0)  # keeps x monotonic along the road, so the road never crosses itself
PROJECT_WINDOW = 30.0             # m, points nearer than this to the road are projected with a local search


@dataclass(frozen=True)
class RoadKind:
    """What a family of roads looks like; one row of ROAD_KINDS."""
    lanes: tuple[int, int]              # lanes in our direction, inclusive range
    lane_width: tuple[float, float]     # m
    oncoming_lanes: int                 # 0 (divided highway) or 1 (two-way road, double yellow centre line)
    radius: tuple[float, float]         # m, constant-radius sections
    straight_len: tuple[float, float]   # m
    arc_len: tuple[float, float]        # m
    clothoid_len: tuple[float, float]   # m, each of the entry and exit spirals
    p_curve: float                      # chance that the next section group is a curve rather than a straight
    max_grade: float                    # rise/run
    shoulder: tuple[float, float]       # m of asphalt beyond the outer edge lines
    marking_width: float                # m, one painted stripe
    dash: tuple[float, float]           # m, painted and gap length of dashed lines
    speed: tuple[float, float]          # m/s, typical traffic speeds (used by scenarios)


ROAD_KINDS: dict[str, RoadKind] = {
    "straight": RoadKind((2, 3), (3.5, 3.7), 0, (1e9, 1e9), (500.0, 1000.0), (0, 0), (0, 0), 0.0, 0.0, (1.0, 2.5),
                         0.15, (3.0, 9.0), (25.0, 31.0)),
    "highway": RoadKind((2, 4), (3.5, 3.8), 0, (400.0, 1500.0), (150.0, 600.0), (80.0, 300.0), (60.0, 120.0),
                        0.5, 0.03, (1.0, 3.0), 0.15, (3.0, 9.0), (25.0, 33.0)),
    "curvy": RoadKind((2, 3), (3.4, 3.7), 0, (150.0, 450.0), (40.0, 200.0), (60.0, 250.0), (40.0, 90.0),
                      0.85, 0.04, (0.8, 2.0), 0.15, (3.0, 9.0), (20.0, 27.0)),
    "suburban": RoadKind((1, 2), (3.0, 3.4), 1, (50.0, 250.0), (50.0, 250.0), (20.0, 120.0), (15.0, 40.0),
                         0.6, 0.05, (0.3, 0.8), 0.12, (3.0, 6.0), (11.0, 16.0)),
}


@dataclass(frozen=True)
class Section:
    """One piece of the reference line: curvature goes linearly from k0 to k1 over `length` metres."""
    s0: float
    length: float
    k0: float
    k1: float

    @property
    def kind(self) -> str:
        if self.k0 == self.k1:
            return "straight" if self.k0 == 0.0 else "arc"
        return "clothoid"


@dataclass(frozen=True)
class Marking:
    """One lane boundary's paint. `offset` is the boundary's lateral offset from the reference line."""
    offset: float
    kind: str                # "solid" | "dashed" | "double"
    colour: str              # "white" | "yellow"
    width: float = 0.15      # m, each stripe
    dash: float = 3.0        # m painted (dashed only)
    gap: float = 9.0         # m unpainted (dashed only)

    def stripes(self) -> tuple[float, ...]:
        """Lateral offsets of the centres of the painted stripes (two for a double line, one stripe width apart)."""
        if self.kind == "double":
            return (self.offset + self.width, self.offset - self.width)
        return (self.offset,)

    def painted(self, s):
        """Whether the boundary is painted at arc length s (float or array); dashes start at s = 0."""
        if self.kind != "dashed":
            return np.ones(np.shape(s), dtype=bool) if np.ndim(s) else True
        return np.mod(s, self.dash + self.gap) < self.dash


def _uniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(rng.uniform(*lo_hi))


def _grid(length: float) -> float:
    """Rounds a section length to the sample grid (at least one cell)."""
    return max(DS, round(length / DS) * DS)


def generate_sections(rng: np.random.Generator, kind: RoadKind, length: float) -> list[Section]:
    """Straights and curve groups (spiral in, arc, spiral out) until `length`, ending with a straight.
    Curves turn back towards heading 0 more often the further the road has turned, and are shortened so
    the heading never leaves ±MAX_HEADING."""
    sections: list[Section] = []
    s, yaw = 0.0, 0.0

    def add(sec_len: float, k0: float, k1: float) -> None:
        nonlocal s, yaw
        sections.append(Section(s, sec_len, k0, k1))
        s += sec_len
        yaw += 0.5 * (k0 + k1) * sec_len

    add(_grid(max(200.0, kind.straight_len[0])), 0.0, 0.0)  # a straight start: the ego sets off on it
    while s < length:
        if rng.random() >= kind.p_curve:
            add(_grid(_uniform(rng, kind.straight_len)), 0.0, 0.0)
            continue
        # Uniform in curvature, not radius: tight curves are not rarer than the table's range suggests.
        k = float(rng.uniform(1.0 / kind.radius[1], 1.0 / kind.radius[0]))
        p_left = 0.5 - 0.45 * yaw / MAX_HEADING
        sign = 1.0 if rng.random() < p_left else -1.0
        lc, la = _grid(_uniform(rng, kind.clothoid_len)), _grid(_uniform(rng, kind.arc_len))
        room = MAX_HEADING - sign * yaw          # heading change still allowed in this direction
        if k * lc > room:                        # even the spirals alone turn too far: turn the other way
            sign, room = -sign, MAX_HEADING + sign * yaw
        la = min(la, math.floor(max(0.0, room / k - lc) / DS) * DS)
        add(lc, 0.0, sign * k)
        if la > 0.0:
            add(la, sign * k, sign * k)
        add(lc, sign * k, 0.0)
    add(_grid(200.0), 0.0, 0.0)
    return sections


class Road:
    """A road generated from (seed, kind). See the module docstring for frames and lane numbering."""

    def __init__(self, seed: int, kind: str = "highway", length: float = 6000.0, num_lanes: int | None = None,
                 lane_width: float | None = None):
        if kind not in ROAD_KINDS:
            raise ValueError(f"unknown road kind {kind!r}; known: {sorted(ROAD_KINDS)}")
        if not (length > 0 and math.isfinite(length)):
            raise ValueError(f"road length must be positive and finite, got {length}")
        self.seed, self.kind_name = int(seed), kind
        self.kind = k = ROAD_KINDS[kind]
        rng = np.random.default_rng([self.seed, 0x0AD])
        self.num_lanes = int(num_lanes if num_lanes is not None else rng.integers(k.lanes[0], k.lanes[1] + 1))
        self.lane_width = float(lane_width if lane_width is not None else round(_uniform(rng, k.lane_width), 2))
        if not 1 <= self.num_lanes <= 4:
            raise ValueError(f"num_lanes must be 1..4, got {self.num_lanes}")
        if not 3.0 <= self.lane_width <= 3.8:
            raise ValueError(f"lane_width must be 3.0..3.8 m, got {self.lane_width}")
        self.oncoming_lanes = k.oncoming_lanes
        self.shoulder_left = round(_uniform(rng, k.shoulder) * (0.5 if k.oncoming_lanes == 0 else 1.0), 2)
        self.shoulder_right = round(_uniform(rng, k.shoulder), 2)
        self.sections = generate_sections(rng, k, length)
        self.length = float(length)
        self._tabulate()
        self._make_elevation(rng)
        self.markings = self._make_markings()

    # --- construction -------------------------------------------------------------------------------------
    def _tabulate(self) -> None:
        k, dk = [], []
        for sec in self.sections:
            n = round(sec.length / DS)
            rate = (sec.k1 - sec.k0) / sec.length
            k.append(sec.k0 + rate * DS * np.arange(n))
            dk.append(np.full(n, rate))
        self._k, self._dk = np.concatenate(k), np.concatenate(dk)
        n = len(self._k)
        self._s = DS * np.arange(n + 1)
        dyaw = self._k * DS + 0.5 * self._dk * DS * DS
        yaw = np.concatenate(([0.0], np.cumsum(dyaw)))
        h = 0.5 * DS
        ymid = yaw[:-1] + self._k * h + 0.5 * self._dk * h * h
        dx = DS / 6.0 * (np.cos(yaw[:-1]) + 4.0 * np.cos(ymid) + np.cos(yaw[1:]))
        dy = DS / 6.0 * (np.sin(yaw[:-1]) + 4.0 * np.sin(ymid) + np.sin(yaw[1:]))
        self._x = np.concatenate(([0.0], np.cumsum(dx)))
        self._y = np.concatenate(([0.0], np.cumsum(dy)))
        self._yaw = yaw
        # the last sample continues straight (the road ends on a straight), so extrapolation is exact
        self._k, self._dk = np.append(self._k, 0.0), np.append(self._dk, 0.0)
        self._xl, self._yl, self._yawl = self._x.tolist(), self._y.tolist(), self._yaw.tolist()
        self._kl, self._dkl = self._k.tolist(), self._dk.tolist()
        self._n = n

    def _make_elevation(self, rng: np.random.Generator) -> None:
        # A few long sinusoids whose slopes add up to at most max_grade.
        wavelengths = rng.uniform(300.0, 1500.0, 3)
        share = rng.dirichlet(np.ones(3))
        self._w = 2.0 * np.pi / wavelengths
        self._amp = self.kind.max_grade * share / self._w
        self._phase = rng.uniform(0.0, 2.0 * np.pi, 3)

    def _make_markings(self) -> tuple[Marking, ...]:
        w, k = self.lane_width, self.kind
        common = dict(width=k.marking_width, dash=k.dash[0], gap=k.dash[1])
        out = []
        for j in range(-self.oncoming_lanes, self.num_lanes + 1):
            if j == -self.oncoming_lanes:
                kind, colour = ("solid", "white") if self.oncoming_lanes else ("solid", "yellow")
            elif j == 0:
                kind, colour = "double", "yellow"          # centre line of a two-way road
            elif j == self.num_lanes:
                kind, colour = "solid", "white"
            else:
                kind, colour = "dashed", "white"
            out.append(Marking(-j * w, kind, colour, **common))
        return tuple(out)

    # --- lanes and edges ----------------------------------------------------------------------------------
    def lane_center_offset(self, lane: int) -> float:
        """Lateral offset of a lane's centre from the reference line (left positive); lane -1 is oncoming."""
        if not -self.oncoming_lanes <= lane < self.num_lanes:
            raise ValueError(f"lane {lane} does not exist (lanes -{self.oncoming_lanes}..{self.num_lanes - 1})")
        return -(lane + 0.5) * self.lane_width

    def lane_at(self, d: float) -> int | None:
        """The lane containing lateral offset d, or None off the lanes."""
        lane = math.floor(-d / self.lane_width)
        return lane if -self.oncoming_lanes <= lane < self.num_lanes else None

    @property
    def edges(self) -> tuple[float, float]:
        """Lateral offsets (left, right) of the asphalt's edges: beyond them is the verge."""
        return (self.oncoming_lanes * self.lane_width + self.shoulder_left,
                -self.num_lanes * self.lane_width - self.shoulder_right)

    # --- reference line -----------------------------------------------------------------------------------
    def _cell(self, s: float) -> int:
        return min(max(int(s // DS), 0), self._n)

    def centerline(self, s: float) -> tuple[float, float, float]:
        """(x, y, yaw) of the reference line at arc length s (extrapolated straight beyond the ends)."""
        i = self._cell(s)
        t = s - i * DS
        y0, k, dk = self._yawl[i], self._kl[i], self._dkl[i]
        yaw = y0 + t * (k + 0.5 * dk * t)
        h = 0.5 * t
        ym = y0 + h * (k + 0.5 * dk * h)
        f = t / 6.0
        return (self._xl[i] + f * (math.cos(y0) + 4.0 * math.cos(ym) + math.cos(yaw)),
                self._yl[i] + f * (math.sin(y0) + 4.0 * math.sin(ym) + math.sin(yaw)), yaw)

    def centerline_array(self, s) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Vectorised centerline for an array of arc lengths."""
        s = np.asarray(s, dtype=float)
        i = np.clip(np.floor_divide(s, DS).astype(np.int64), 0, self._n)
        t = s - i * DS
        y0, k, dk = self._yaw[i], self._k[i], self._dk[i]
        yaw = y0 + t * (k + 0.5 * dk * t)
        h = 0.5 * t
        ym = y0 + h * (k + 0.5 * dk * h)
        f = t / 6.0
        x = self._x[i] + f * (np.cos(y0) + 4.0 * np.cos(ym) + np.cos(yaw))
        y = self._y[i] + f * (np.sin(y0) + 4.0 * np.sin(ym) + np.sin(yaw))
        return x, y, yaw

    def curvature(self, s: float) -> float:
        """Curvature (1/m, left positive) of the reference line at s."""
        i = self._cell(s)
        return self._kl[i] + self._dkl[i] * (s - i * DS)

    def curvature_array(self, s) -> np.ndarray:
        s = np.asarray(s, dtype=float)
        i = np.clip(np.floor_divide(s, DS).astype(np.int64), 0, self._n)
        return self._k[i] + self._dk[i] * (s - i * DS)

    def lane_curvature(self, s: float, d: float) -> float:
        """Curvature of the line at constant lateral offset d (a lane centre): k / (1 - k d)."""
        k = self.curvature(s)
        return k / (1.0 - k * d)

    def position(self, s: float, d: float) -> tuple[float, float, float]:
        """World (x, y, yaw) of road point (s, d); yaw is the road's heading there."""
        x, y, yaw = self.centerline(s)
        return x - d * math.sin(yaw), y + d * math.cos(yaw), yaw

    def positions(self, s, d) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Vectorised `position` (s and d broadcast against each other)."""
        x, y, yaw = self.centerline_array(s)
        return x - d * np.sin(yaw), y + d * np.cos(yaw), yaw

    # --- elevation ----------------------------------------------------------------------------------------
    def elevation(self, s):
        """Height (m) of the road at arc length s (float or array); the road has no banking."""
        z = np.sum(self._amp * np.sin(np.multiply.outer(s, self._w) + self._phase), axis=-1)
        return float(z) if np.ndim(s) == 0 else z

    def grade(self, s):
        """Road slope dz/ds (rise/run, positive uphill in the direction of increasing s)."""
        g = np.sum(self._amp * self._w * np.cos(np.multiply.outer(s, self._w) + self._phase), axis=-1)
        return float(g) if np.ndim(s) == 0 else g

    # --- projection ---------------------------------------------------------------------------------------
    def project(self, x: float, y: float) -> tuple[float, float]:
        """(s, d) of world point (x, y): the foot of the perpendicular on the reference line. Local search
        in x (x grows along the road), a global search for points far off the road, then Newton steps."""
        lo = bisect.bisect_left(self._xl, x - PROJECT_WINDOW)
        hi = bisect.bisect_right(self._xl, x + PROJECT_WINDOW, lo)
        lo, hi = min(lo, self._n), max(hi, lo + 1)
        d2 = (self._x[lo:hi] - x) ** 2 + (self._y[lo:hi] - y) ** 2
        j = int(np.argmin(d2))
        if d2[j] > PROJECT_WINDOW ** 2:
            d2 = (self._x - x) ** 2 + (self._y - y) ** 2
            lo, j = 0, int(np.argmin(d2))
        s = (lo + j) * DS
        for _ in range(6):
            # Newton on f(s) = (p - c(s)) . t(s), whose derivative is -(1 - k d)
            cx, cy, cyaw = self.centerline(s)
            c, sn = math.cos(cyaw), math.sin(cyaw)
            d = -(x - cx) * sn + (y - cy) * c
            step = ((x - cx) * c + (y - cy) * sn) / max(1.0 - self.curvature(s) * d, 0.1)
            s += step
            if abs(step) < 1e-10:
                break
        cx, cy, cyaw = self.centerline(s)
        return s, -(x - cx) * math.sin(cyaw) + (y - cy) * math.cos(cyaw)

    def describe(self) -> str:
        kinds = [sec.kind for sec in self.sections]
        return (f"Road(seed={self.seed}, kind={self.kind_name}, {self.length:.0f} m, {self.num_lanes} lanes x "
                f"{self.lane_width} m, {len(kinds)} sections: {kinds.count('arc')} arcs)")
