"""What card trusts of the CAN it receives, and why canValid is false when it is.

Two parts:
  - `FrameFilter` drops, before opendbc's parsers see them, the car's frames that cannot be the message
    their address names: a length other than the DBC's, or a checksum that does not match. opendbc's
    parser would read a short frame's missing bits as zeros and never count what it refused; here every
    drop is counted per message and reason (card reports the total as carState.canErrorCounter).
  - `problems` names every message the parsers expect that is missing, timed out or failing its
    counter, so card can say *which* message makes canValid false. Messages on a bus the installation
    does not connect are marked as not expected (`expect_buses`), with the reason logged by card.
"""

from collections import Counter
from collections.abc import Iterable, Mapping

from opendbc.can import CANParser
from opendbc.can.dbc import SignalType
from opendbc.can.parser import MAX_BAD_COUNTER, get_raw_value
from opendbc.car.can_definitions import CanData


class FrameFilter:
    """Per parser bus: address -> (DBC name, length, checksum signal or None)."""

    def __init__(self, parsers: Iterable[CANParser]):
        self.rules: dict[int, dict[int, tuple[str, int, object]]] = {}
        for p in parsers:
            rules = self.rules.setdefault(p.bus, {})
            for addr, msg in p.dbc.addr_to_msg.items():
                csum = next((s for s in msg.sigs.values() if s.type > SignalType.COUNTER and s.calc_checksum), None)
                rules[addr] = (msg.name, msg.size, csum)
        self.dropped: Counter[tuple[int, str, str]] = Counter()  # (bus, message, "length"|"checksum") -> frames

    @property
    def total_dropped(self) -> int:
        return sum(self.dropped.values())

    def check(self, address: int, dat: bytes, bus: int) -> str | None:
        """None when the frame may be what its address says; else the reason it cannot be."""
        rule = self.rules.get(bus, {}).get(address)
        if rule is None:
            return None  # not a message any parser reads on this bus
        _, size, csum = rule
        if len(dat) != size:
            return "length"
        if csum is not None and get_raw_value(dat, csum) != csum.calc_checksum(address, csum, bytearray(dat)):
            return "checksum"
        return None

    def filter(self, frames: Iterable[CanData]) -> list[CanData]:
        out = []
        for f in frames:
            why = self.check(*f)
            if why is None:
                out.append(f)
            else:
                address, _, bus = f
                self.dropped[(bus, self.rules[bus][address][0], why)] += 1
        return out


def expect_buses(parsers: Mapping[object, CANParser], connected: frozenset[int] | None) -> list[str]:
    """Marks the messages of parsers on buses that are not connected as not expected; returns their names.

    opendbc adds a message to a parser when the car state first reads it, so call this after each update
    (cheap: it only touches parsers on unconnected buses).
    """
    if connected is None:
        return []
    names = []
    for p in parsers.values():
        if p.bus not in connected:
            for st in p.message_states.values():
                st.ignore_alive = True
                names.append(st.name)
    return names


def problems(parsers: Mapping[object, CANParser], now_nanos: int) -> list[str]:
    """Every expected message that makes its parser invalid, as 'NAME (bus N): why', sorted."""
    out = []
    for p in parsers.values():
        bus_timeout = p.bus_timeout
        for st in p.message_states.values():
            if st.counter_fail >= MAX_BAD_COUNTER:
                out.append(f"{st.name} (bus {p.bus}): counter errors")
            elif st.ignore_alive:
                continue
            elif not st.timestamps:
                out.append(f"{st.name} (bus {p.bus}): never received")
            elif not st.valid(now_nanos, bus_timeout):
                out.append(f"{st.name} (bus {p.bus}): timed out")
    return sorted(out)
