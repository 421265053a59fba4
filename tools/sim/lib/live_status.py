"""`roadpilot sim`'s live view in the terminal: one status line (simulated time, speed, set speed, engagement,
alert), redrawn in place a few times a second on a terminal, or a plain line every PLAIN_EVERY_S seconds when
the output is a file or a pipe (a log should not fill up with redraws)."""

import shutil
import sys
from typing import TextIO

from cereal import messaging

TTY_EVERY_S = 0.25
PLAIN_EVERY_S = 15.0


def format_status(t: float, total_s: float, v: float | None, set_speed: float | None, state: str | None,
                  alert: str) -> str:
    """One line; None means the message that carries it has not come (yet): shown as "-", never made up."""
    speed = "-" if v is None else f"{v * 3.6:5.1f}"
    cruise = "-" if set_speed is None else f"{set_speed * 3.6:3.0f}"
    engaged = "no selfdriveState" if state is None else ("ENGAGED" if state != "disabled" else "not engaged") + \
        (f" ({state})" if state not in (None, "disabled", "enabled") else "")
    return (f"t {t:6.1f}/{total_s:.0f} s | {speed} km/h | set {cruise} km/h | {engaged}" +
            (f" | {alert}" if alert else ""))


class LiveStatus:
    """Reads the newest carState and selfdriveState (conflated sockets: nothing queues up) when it is time to
    show them. Create it before the manager starts so the subscriptions are in place."""

    def __init__(self, total_s: float, out: TextIO | None = None, tty: bool | None = None):
        self.out = out or sys.stdout
        self.tty = self.out.isatty() if tty is None else tty
        self.every = TTY_EVERY_S if self.tty else PLAIN_EVERY_S
        self.total_s = total_s
        self.socks = {s: messaging.sub_sock(s, conflate=True) for s in ("carState", "selfdriveState")}
        self.latest: dict[str, object] = {}
        self.next_at: float | None = None
        self.shown = False

    def _poll(self) -> None:
        for s, sock in self.socks.items():
            dat = sock.receive(0)
            if dat is not None:
                try:
                    self.latest[s] = getattr(messaging.log_from_bytes(dat), s)
                except messaging.MalformedMessage:
                    pass  # the next one will do: this is a view, not a record

    def line(self, t: float, v: float) -> str:
        self._poll()
        cs, sd = self.latest.get("carState"), self.latest.get("selfdriveState")
        cruise = cs.cruiseState.speed if cs is not None and cs.cruiseState.enabled else None
        alert = " / ".join(x for x in (sd.alertText1, sd.alertText2) if x) if sd is not None else ""
        return format_status(t, self.total_s, v, cruise, None if sd is None else str(sd.state), alert)

    def update(self, now: float, t: float, v: float) -> None:
        """`now`: time.monotonic(); `t`, `v`: the newest simState's time and speed (the car's true speed)."""
        if self.next_at is not None and now < self.next_at:
            return
        self.next_at = now + self.every
        text = self.line(t, v)
        if self.tty:
            width = shutil.get_terminal_size((120, 24)).columns
            self.out.write("\r" + text[:width - 1] + "\x1b[K")
        else:
            self.out.write(text + "\n")
        self.out.flush()
        self.shown = True

    def say(self, text: str) -> None:
        """A line of its own (an event worth keeping on screen), above the status line."""
        self.out.write(("\r\x1b[K" if self.tty and self.shown else "") + text + "\n")
        self.out.flush()
        self.next_at = None  # redraw the status line at once

    def close(self) -> None:
        if self.tty and self.shown:
            self.out.write("\n")
            self.out.flush()
        for sock in self.socks.values():
            sock.close()
