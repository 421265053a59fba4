"""A drive's score, read from its simState stream (the ground truth): how far and how fast it went, and
every collision and lane departure (an event is a run of consecutive simState messages that flag it)."""

from dataclasses import dataclass, field


@dataclass
class SimScore:
    messages: int = 0
    t: float = 0.0                 # simulated s of the last message
    distance: float = 0.0          # m, integrated from vEgo between messages
    v_min: float = float("inf")
    v_max: float = 0.0
    collisions: list[float] = field(default_factory=list)   # start times (s)
    departures: list[float] = field(default_factory=list)
    gaps: int = 0                  # messages whose t did not follow the previous one's by 0.05 s
    _prev: tuple[float, float, bool, bool] | None = None

    def add(self, ss) -> None:
        """One simState (reader or builder)."""
        t, v = ss.t, ss.vEgo
        if self._prev is not None:
            pt, pv, pc, pd = self._prev
            if abs(t - pt - 0.05) > 1e-6:
                self.gaps += 1
            self.distance += 0.5 * (v + pv) * max(t - pt, 0.0)
        else:
            pc = pd = False
        if ss.collision and not pc:
            self.collisions.append(t)
        if ss.laneDeparture and not pd:
            self.departures.append(t)
        self.messages += 1
        self.t = t
        self.v_min, self.v_max = min(self.v_min, v), max(self.v_max, v)
        self._prev = (t, v, bool(ss.collision), bool(ss.laneDeparture))

    def lines(self) -> list[str]:
        if not self.messages:
            return ["  no simState received: the simulator did not run"]
        out = [f"  simulated {self.t:.1f} s, {self.distance:.0f} m, speed {self.v_min:.1f}..{self.v_max:.1f} m/s "
               f"({self.messages} simState messages{f', {self.gaps} gaps' if self.gaps else ''})",
               f"  collisions: {len(self.collisions)}" +
               (f" (at {_times(self.collisions)})" if self.collisions else ""),
               f"  lane departures: {len(self.departures)}" +
               (f" (at {_times(self.departures)})" if self.departures else "")]
        return out


def _times(ts: list[float]) -> str:
    shown = ", ".join(f"{t:.1f} s" for t in ts[:5])
    return shown + (f" and {len(ts) - 5} more" if len(ts) > 5 else "")
