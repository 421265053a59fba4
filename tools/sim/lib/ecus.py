"""The simulated car's diagnostic side: its ECUs answer firmware and VIN queries as a real car's do.

opendbc identifies most cars by asking their ECUs for firmware versions (UDS/KWP/OBD over ISO-TP on the
powertrain bus, `opendbc.car.fw_versions`). The simulated car has the ECUs opendbc lists for its platform
(`FW_VERSIONS[platform]`), each at its address (and sub-address: Toyota's 0x750 gateway), each answering
the brand's query that a real one answers:
  - the version request of the FIRST of the brand's requests that lists the ECU's type (Toyota: KWP 0x1a88
    for the camera, radar, ABS and EPS; OBD mode 09 PID 04 for the engine), with the first firmware string
    opendbc lists for it; any other service gets a negative response (0x7f, serviceNotSupported);
  - the engine (0x7e0, also reached through the functional address 0x7df) answers the OBD VIN request.
ISO-TP as an ECU does it: single frames, or a first frame, then consecutive frames after the tester's flow
control, one per 10 ms step (the separation time opendbc asks for). Frames are padded to 8 bytes.
"""

from dataclasses import dataclass, field

from opendbc.car import uds
from opendbc.car.can_definitions import CanData
from opendbc.car.fw_query_definitions import StdQueries
from opendbc.car.fw_versions import FW_QUERY_CONFIGS, VERSIONS

from selfdrive.car.fingerprinting import is_diagnostic

__all__ = ["Ecu", "SimEcus", "check_digit", "is_diagnostic", "sim_vin"]

DIAG_BUS = 0
FUNCTIONAL_ADDR = 0x7DF
OBD_ADDRS = range(0x7E0, 0x7E8)       # emission-related ECUs: they answer functional OBD requests
ENGINE_ADDR = 0x7E0
FLOW_CONTROL_WAIT_STEPS = 100         # 1 s for the tester's flow control, then the response is abandoned
PAD = 0x00


def check_digit(vin: str) -> str:
    """ISO 3779's check digit (position 9) of a 17-character VIN."""
    # transliteration: letters count 1-9 in the order A-I, J-R, S-Z, skipping I, O and Q (never in a VIN)
    values = {str(d): d for d in range(10)}
    for letters, first in (("ABCDEFGH", 1), ("JKLMN", 1), ("P", 7), ("R", 9), ("STUVWXYZ", 2)):
        values.update({c: first + i for i, c in enumerate(letters)})
    weights = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
    r = sum(values[c] * w for c, w in zip(vin, weights, strict=True)) % 11
    return "X" if r == 10 else str(r)


def sim_vin(platform: str) -> str:
    """A well-formed VIN for the simulated car (Toyota's world manufacturer id; the serial says 'simulated')."""
    wmi = "JTH" if platform.startswith("LEXUS") else "JTM"
    vin = wmi + "SMCAR" + "0" + "J" + "S" + "000001"  # WMI, descriptor, check digit (below), 2018, plant, serial
    return vin[:8] + check_digit(vin) + vin[9:]


@dataclass
class Ecu:
    """One ECU's diagnostic server: its address, the answers it gives, and an ISO-TP response in flight."""
    address: int
    sub_address: int | None
    answers: dict[bytes, bytes]          # request payload -> response payload
    functional: bool = False             # also answers requests sent to the functional address
    pending: list[bytes] = field(default_factory=list)  # frames ready to go out
    rest: bytes = b""                     # a multi-frame response's bytes after the first frame
    seq: int = 1
    waiting_fc: int = 0                  # steps left to wait for the tester's flow control (0: not waiting)
    sending: bool = False

    @property
    def response_address(self) -> int:
        return uds.get_rx_addr_for_tx_addr(self.address)

    def _header(self) -> bytes:
        return b"" if self.sub_address is None else bytes([self.sub_address])

    def _frame(self, payload: bytes) -> bytes:
        dat = self._header() + payload
        return dat + bytes([PAD]) * (8 - len(dat))

    def receive(self, dat: bytes, functional: bool) -> None:
        """One frame sent to this ECU's request address (or the functional one)."""
        if self.sub_address is not None:
            if functional or not dat or dat[0] != self.sub_address:
                return
            dat = dat[1:]
        if not dat:
            return
        kind = dat[0] >> 4
        if kind == 0x0:      # single frame: a request
            n = dat[0] & 0x0F
            if 0 < n <= len(dat) - 1:
                self._respond(bytes(dat[1:1 + n]))
        elif kind == 0x3 and self.waiting_fc:  # flow control: continue to send
            if dat[0] & 0x0F == 0:
                self.waiting_fc, self.sending = 0, True
            elif dat[0] & 0x0F == 2:  # overflow/abort
                self.waiting_fc, self.rest = 0, b""

    def _respond(self, request: bytes) -> None:
        response = self.answers.get(request)
        if response is None:
            return  # not a protocol this ECU speaks: silence
        room = 7 - len(self._header())
        self.rest, self.sending, self.waiting_fc = b"", False, 0
        if len(response) <= room:
            self.pending.append(self._frame(bytes([len(response)]) + response))
            return
        first = room - 1
        self.pending.append(self._frame(bytes([0x10 | (len(response) >> 8), len(response) & 0xFF]) +
                                        response[:first]))
        self.rest, self.seq, self.waiting_fc = response[first:], 1, FLOW_CONTROL_WAIT_STEPS

    def step(self) -> list[bytes]:
        """The frames this ECU sends in one 10 ms step."""
        out, self.pending = self.pending, []
        if self.waiting_fc:
            self.waiting_fc -= 1
            if not self.waiting_fc:
                self.rest = b""  # the tester never asked for the rest
        elif self.sending and self.rest:
            room = 7 - len(self._header())
            out.append(self._frame(bytes([0x20 | (self.seq & 0x0F)]) + self.rest[:room]))
            self.rest, self.seq = self.rest[room:], self.seq + 1
            self.sending = bool(self.rest)
        return out


def ecu_answers(brand: str, ecu_type, fw: bytes) -> dict[bytes, bytes]:
    """What an ECU of `ecu_type` answers: the first of the brand's requests that lists its type (tester present,
    sessions, then the version). A real ECU speaks one of the diagnostic protocols the brand's query tries
    (Toyota: KWP or OBD or UDS); to the others it says nothing, and the tester's query times out."""
    # every ECU answers a tester present, in both its forms: that is how a tester finds which ECUs are there
    answers = {StdQueries.TESTER_PRESENT_REQUEST: StdQueries.TESTER_PRESENT_RESPONSE,
               StdQueries.SHORT_TESTER_PRESENT_REQUEST: StdQueries.SHORT_TESTER_PRESENT_RESPONSE}
    for r in FW_QUERY_CONFIGS[brand].requests:
        if r.bus == DIAG_BUS and (len(r.whitelist_ecus) == 0 or ecu_type in r.whitelist_ecus):
            answers.update(zip(r.request, r.response, strict=True))
            answers[r.request[-1]] = r.response[-1] + fw
            break
    return answers


class SimEcus:
    """Every ECU opendbc lists for `platform`, on the powertrain bus."""

    def __init__(self, platform: str, brand: str = "toyota"):
        self.vin = sim_vin(platform)
        self.ecus: list[Ecu] = []
        for (ecu_type, address, sub_address), versions in VERSIONS[brand][platform].items():
            self.ecus.append(Ecu(address, sub_address, ecu_answers(brand, ecu_type, versions[0]),
                                 functional=address in OBD_ADDRS))
        engine = next((e for e in self.ecus if e.address == ENGINE_ADDR), None)
        if engine is not None:
            engine.answers[StdQueries.OBD_VIN_REQUEST] = StdQueries.OBD_VIN_RESPONSE + self.vin.encode()
        self.by_address: dict[int, list[Ecu]] = {}
        for e in self.ecus:
            self.by_address.setdefault(e.address, []).append(e)
        self.requests = 0

    def receive(self, address: int, dat: bytes, bus: int) -> bool:
        """A frame from the bus; True when it was a diagnostic request or flow control for our ECUs."""
        if bus != DIAG_BUS:
            return False
        if address == FUNCTIONAL_ADDR:
            self.requests += 1
            for e in self.ecus:
                if e.functional:
                    e.receive(dat, functional=True)
            return True
        ecus = self.by_address.get(address)
        if ecus is None:
            return False
        self.requests += 1
        for e in ecus:
            e.receive(dat, functional=False)
        return True

    def frames(self) -> list[CanData]:
        """The responses of one 10 ms step."""
        return [CanData(e.response_address, dat, DIAG_BUS) for e in self.ecus for dat in e.step()]

