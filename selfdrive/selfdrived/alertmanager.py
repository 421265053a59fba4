"""Which one alert the driver sees: the highest priority among those raised recently.

An alert stays up for its `duration` after the last cycle that raised it, so a one-cycle event
(a disengagement, a refused engagement) is still on screen long enough to be read and heard.
Among equal priorities the most recently started wins. Time is counted in frames, so replay and
lockstep runs pick the same alert as a real-time run.
"""

from dataclasses import dataclass

from common.realtime import DT_CTRL
from selfdrive.selfdrived.events import Alert


@dataclass
class _Active:
    alert: Alert
    start_frame: int
    end_frame: int


class AlertManager:
    def __init__(self, dt: float = DT_CTRL):
        self.dt = dt
        self.active: dict[str, _Active] = {}

    def add_many(self, frame: int, alerts: list[tuple[str, Alert]]) -> None:
        for key, alert in alerts:
            end = frame + max(1, round(alert.duration / self.dt))
            cur = self.active.get(key)
            if cur is None or cur.end_frame < frame:
                self.active[key] = _Active(alert, frame, end)
            else:
                cur.alert, cur.end_frame = alert, max(cur.end_frame, end)

    def process(self, frame: int) -> tuple[str, Alert] | None:
        """The alert to show at `frame` ("<event>/<type>", alert), or None."""
        self.active = {k: a for k, a in self.active.items() if a.end_frame > frame}
        if not self.active:
            return None
        key = max(self.active, key=lambda k: (self.active[k].alert.priority, self.active[k].start_frame))
        return key, self.active[key].alert
