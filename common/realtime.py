"""Loop periods, loop pacing (Ratekeeper) and realtime scheduling, in one place.

The DT_* periods mirror the service rates in `cereal/services.py` (a test checks they agree).
Loops woken by their input messages (controlsd, selfdrived, card) call `Ratekeeper.monitor_time()`,
which only measures; loops that own their pace (sensors, sim, UI) call `keep_time()`, which sleeps.
Time is common.clock's: the machine's on a car, the world's under the lockstep simulator (a Ratekeeper of the
manager or the simulator itself passes `wall=True`).
"""

import collections
import os
import time

from common import clock
from common.swaglog import cloudlog

DT_CTRL = 0.01  # controlsd, card, selfdrived: 100 Hz
DT_MDL = 0.05   # modeld, plannerd, camera: 20 Hz
DT_DMON = 0.05  # driver monitoring: 20 Hz
DT_CAL = 0.05   # calibrationd output: one per camera frame
DT_HW = 0.5     # deviceState, managerState: 2 Hz

# SCHED_FIFO priorities (1-99, higher runs first). Control outranks the model: a late model frame
# only costs a slightly older plan, a late control cycle is felt in the steering.
PRIO_CTRL_HIGH = 53  # card, canbridged
PRIO_CTRL_LOW = 51   # controlsd, selfdrived
PRIO_MDL = 50        # modeld, camera


class Ratekeeper:
    """Paces (`keep_time`) or watches (`monitor_time`) a loop meant to run at `rate_hz`.

    The first call starts the schedule (it never sleeps); call k is then due at start + k/rate_hz. A cycle
    whose call comes after its deadline has overrun (`missed` counts these). Small overruns are caught up
    on the next cycles, so the average rate stays exact; after a stall longer than a whole period the
    schedule restarts from now instead of running a burst of back-to-back cycles. A loop that is always
    slower than its rate overruns every cycle. `print_delay_threshold` (s): overruns longer than this are
    logged, at most once a second.
    """

    LOG_EVERY_S = 1.0

    def __init__(self, rate_hz: float, print_delay_threshold: float | None = None, wall: bool = False):
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz!r}")
        self.interval = 1.0 / rate_hz
        self.print_delay_threshold = print_delay_threshold
        # the machine's clock, or the process's (the world's under a lockstep simulator: common.clock)
        self.wall = wall
        self.frame = 0           # cycles completed
        self.remaining = 0.0     # s to this cycle's deadline at the last call; negative when late
        self.missed = 0          # cycles that overran their deadline
        self._next: float | None = None  # deadline of the current cycle; set on the first call
        self._last = 0.0
        self._dts: collections.deque[float] = collections.deque(maxlen=max(5, round(rate_hz)))  # ~1 s
        self._last_log = -float("inf")
        self._unlogged = 0

    @property
    def avg_dt(self) -> float:
        """Mean time between calls over about the last second (the interval until there is data)."""
        return sum(self._dts) / len(self._dts) if self._dts else self.interval

    @property
    def lagging(self) -> bool:
        """The loop ran below 90% of its rate on average over about the last second."""
        return self.avg_dt > self.interval / 0.9

    def keep_time(self) -> bool:
        """Sleeps until this cycle's deadline. True when the cycle overran it (no sleep then)."""
        lagged = self.monitor_time()
        if self.remaining > 0:
            (time.sleep if self.wall else clock.sleep)(self.remaining)
        return lagged

    def monitor_time(self) -> bool:
        """Ends a cycle without sleeping: updates frame, remaining, missed and lagging. True when it overran."""
        now = time.monotonic() if self.wall else clock.monotonic()
        if self._next is None:
            self._next = now  # the schedule starts at the first call, not at construction
        else:
            self._dts.append(now - self._last)
        self._last = now
        self.remaining = self._next - now
        lagged = self.remaining < -1e-6  # a microsecond: float rounding of a driven clock exactly on time is not late
        if lagged:
            self.missed += 1
            self._log_lag(now, -self.remaining)
        self._next = now + self.interval if self.remaining < -self.interval else self._next + self.interval
        self.frame += 1
        return lagged

    def _log_lag(self, now: float, lag: float) -> None:
        if self.print_delay_threshold is None or lag <= self.print_delay_threshold:
            return
        if now - self._last_log < self.LOG_EVERY_S:
            self._unlogged += 1
            return
        cloudlog.warning("loop lagging", extra={"lag_ms": round(lag * 1e3, 2), "frame": self.frame,
                                                "missed": self.missed, "unlogged_since_last": self._unlogged})
        self._last_log, self._unlogged = now, 0


def set_realtime_priority(level: int) -> bool:
    """Runs this process under SCHED_FIFO at `level` (1-99). Where that is not permitted (no root or
    CAP_SYS_NICE, another OS), logs one line and leaves the scheduling as it was. True when applied."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(level))
    except (OSError, AttributeError) as e:
        cloudlog.info("realtime priority not applied", extra={"level": level, "error": repr(e)})
        return False
    return True
