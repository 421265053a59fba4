"""card's logic without sockets: CAN batches in, carState (and the radar's tracks) out; carControl in, frames to
send out.

Tests drive it directly with recorded frames in 10 ms batches; card.py only adds the messaging.
"""

import math
from collections.abc import Sequence

from opendbc.car.can_definitions import CanData
from opendbc.car.car_helpers import interfaces
from opendbc.car.structs import CarControl, CarState, RadarData

from cereal import ACTUATOR_FLOATS
from common.swaglog import cloudlog, log_due
from selfdrive.car.can_validity import FrameFilter, expect_buses, problems
from selfdrive.car.car_specific import CarPlan

Packet = tuple[int, Sequence[CanData]]  # (monotonic ns, frames of one `can` message)
LOG_PERIOD_NS = 1_000_000_000


class CarLogic:
    def __init__(self, plan: CarPlan):
        self.plan = plan
        self.CP = plan.CP
        self.CI = interfaces[self.CP.carFingerprint](self.CP)
        # the car port's radar reader (a car without a radar gets opendbc's empty one: no tracks, 20 Hz)
        self.RI = self.CI.RadarInterface(self.CP)
        radar_parsers = [self.RI.rcp] if self.RI.rcp is not None else []
        self.filter = FrameFilter([*self.CI.can_parsers.values(), *radar_parsers])
        self.tracks: RadarData | None = None  # the radar cycle the last update completed, if it completed one
        self.not_expected: list[str] = []
        self.problems: list[str] = []  # what makes canValid false now, e.g. "PRE_COLLISION (bus 0): never received"
        self.logged_problems: list[str] = []
        self.logged_at_ns = -LOG_PERIOD_NS
        self.tx_dropped = 0
        self.nonfinite_count = 0

    def update(self, packets: Sequence[Packet]) -> CarState:
        """One carState from the `can` messages since the last call (an empty packet when none came)."""
        clean = [(t, self.filter.filter(frames)) for t, frames in packets]
        CS = self.CI.update(clean)
        self.tracks = self.RI.update(clean)
        not_expected = expect_buses(self.CI.can_parsers, self.plan.connected_buses)
        if not_expected != self.not_expected:
            self.not_expected = not_expected
            cloudlog.warning("messages not expected: their bus is not connected",
                             extra={"messages": sorted(not_expected)})
            CS.canValid = all(p.can_valid for p in self.CI.can_parsers.values())
        if packets:
            self.problems = problems(self.CI.can_parsers, packets[-1][0])
            self._log_problems(packets[-1][0])
        CS.canErrorCounter = min(self.filter.total_dropped, 2**32 - 1)
        return CS

    def _log_problems(self, now_nanos: int) -> None:
        # At most one line a second while the set changes (start-up fills it in message by message),
        # but the return to valid is logged at once.
        if self.problems == self.logged_problems:
            return
        if not self.problems:
            cloudlog.info("CAN valid", extra={"was": self.logged_problems})
        elif now_nanos - self.logged_at_ns >= LOG_PERIOD_NS:
            cloudlog.warning("CAN invalid", extra={"problems": self.problems})
        else:
            return
        self.logged_problems, self.logged_at_ns = self.problems, now_nanos

    def control(self, CC: CarControl, now_nanos: int) -> tuple[CarControl.Actuators, list[CanData]]:
        """The car port's frames for `CC` (non-finite actuator values zeroed and logged first)."""
        CC = CC.as_reader() if hasattr(CC, "as_reader") else CC  # the car port reads it (and copies actuators)
        bad = [f for f in ACTUATOR_FLOATS if not math.isfinite(getattr(CC.actuators, f))]
        # The driver's foot is on the gas in the newest carState; controlsd's carControl answered the one before it.
        # From this frame on the safety layer refuses any acceleration but none (longitudinal control is not allowed
        # while the gas is pressed), so ask for none now instead of a frame it would drop.
        gas = CC.longActive and self.CI.CS.out.gasPressed
        if bad or gas:
            fixed = CC.as_builder()
            for f in bad:
                setattr(fixed.actuators, f, 0.0)
            if gas:
                fixed.longActive = False
                fixed.actuators.accel = 0.0
            CC = fixed.as_reader()
        if bad:
            self.nonfinite_count += 1
            if log_due(self.nonfinite_count):
                cloudlog.error("non-finite actuator values zeroed",
                               extra={"fields": bad, "count": self.nonfinite_count})
        actuators, sends = self.CI.apply(CC, now_nanos)
        out = []
        for address, dat, bus in sends:
            if (address, bus) in self.plan.tx_drop:
                self.tx_dropped += 1
                continue
            out.append(CanData(address, bytes(dat), bus))
        return actuators, out
