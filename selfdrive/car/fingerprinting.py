"""Identifying the car: opendbc's own flow (VIN, ECU firmware over ISO-TP/UDS, then CAN fingerprint), or a
forced platform.

`identify_by_query` runs `opendbc.car.car_helpers.fingerprint` through card's `can`/`sendcan` (canbridged's
adapter, whose safety layer lets only diagnostic frames through while the car is unknown): the VIN, which
ECUs answer a tester present, their firmware versions (matched against opendbc's FW_VERSIONS: most brands,
Toyota among them, are identified this way), then the FPv1 CAN fingerprint for the few platforms that still
have one. Its time is bounded: every query has opendbc's timeouts, and a silent bus counts as empty
messages (one per CAN_WAIT_MS), so the CAN window ends after its 200 messages whatever comes.

A forced platform (`--car`) skips the queries; `Fingerprinter` then only watches the first second of
`can`. Either way the window records which addresses (and lengths) each bus carried, which card uses to
see how the car is wired (`car_specific.py`), and whether the bus agrees with the platform is decided
later, by card's CAN validity (canbridged sends nothing until it does).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from opendbc.car import gen_empty_fingerprint
from opendbc.car.can_definitions import CanData, CanRecvCallable, CanSendCallable
from opendbc.car.car_helpers import fingerprint as opendbc_fingerprint
from opendbc.car.car_helpers import interfaces
from opendbc.car.structs import CarParams
from opendbc.car.vin import VIN_UNKNOWN

FINGERPRINT_FRAMES = 100  # `can` messages (1 s) a forced platform's window watches


def is_diagnostic(address: int) -> bool:
    """A diagnostic (ISO 15765) address, as opendbc's ELM327 safety mode allows them while the car is unknown
    (modes/elm327.h): 11-bit 0x600-0x7FF, 29-bit 0x18DAxxF1 and 0x18DB33F1, and GM's camera at 0x24B."""
    return (address & 0x1FFFFF00) in (0x600, 0x700) or (address & 0x1FFF00FF) == 0x18DA00F1 or \
        address in (0x18DB33F1, 0x24B)


SOURCES = {"fw": "firmware query", "can": "CAN fingerprint", "fixed": "forced (--car)", "none": "not recognised"}


@dataclass(frozen=True)
class FingerprintResult:
    candidate: str | None         # opendbc platform name; None: not identified
    source: str                   # a key of SOURCES
    fingerprint: dict[int, dict[int, int]]  # bus -> address -> length, as opendbc's get_params wants it
    frames: int                   # `can` messages watched, from the first one that carried a frame
    vin: str = VIN_UNKNOWN
    car_fw: tuple = ()            # CarParams.CarFw of every ECU that answered
    exact: bool = True            # False: a fuzzy firmware match
    seconds: float = 0.0          # how long identification took

    @property
    def buses_seen(self) -> frozenset[int]:
        return frozenset(b for b, addrs in self.fingerprint.items() if addrs)


def known_platform(name: str) -> bool:
    return name in interfaces and name != "MOCK"


class Fingerprinter:
    """A forced platform's CAN window: feed it one `can` message's frames at a time until `done` (1 s), for the
    wiring (which buses carry which addresses). Whether the bus really is that platform is decided later, by
    card's CAN validity."""

    def __init__(self, forced: str):
        if not known_platform(forced):
            raise ValueError(f"unknown platform {forced!r}; opendbc platforms look like TOYOTA_RAV4")
        self.forced = forced
        self.fingerprint = gen_empty_fingerprint()
        self.frames = 0

    def add(self, frames: Iterable[CanData]) -> None:
        """One `can` message's frames. The window starts at the first frame: empty messages before it
        (an adapter up before the car wakes, a replay not started yet) say nothing about the car."""
        frames = list(frames)
        if self.frames == 0 and not frames:
            return
        for address, dat, src in frames:
            if src < 128:  # not our own transmissions echoed back
                self.fingerprint.setdefault(src, {})[address] = len(dat)
        self.frames += 1

    @property
    def done(self) -> bool:
        return self.frames >= FINGERPRINT_FRAMES

    def result(self) -> FingerprintResult:
        return FingerprintResult(self.forced, "fixed", self.fingerprint, self.frames)


def identify_by_query(can_recv: CanRecvCallable, can_send: CanSendCallable,
                      cached: CarParams | None = None) -> FingerprintResult:
    """opendbc's identification (VIN, firmware, then CAN fingerprint) over the given bus callbacks.

    `cached`: this run's earlier CarParams (a restarted card): opendbc then reuses its VIN and firmware
    instead of querying again. OBD multiplexing (a panda's relay to the OBD port) does not exist on a plain
    CAN adapter: that callback does nothing."""
    start = time.monotonic()
    frames = 0

    def counting_recv(wait_for_one: bool = False) -> list[list[CanData]]:
        nonlocal frames
        packets = can_recv(wait_for_one)
        frames += len(packets)
        return packets

    candidate, finger, vin, car_fw, source, exact = opendbc_fingerprint(counting_recv, can_send, lambda _: None,
                                                                        cached)
    if candidate is not None and not known_platform(candidate):
        candidate = None
    how = {CarParams.FingerprintSource.fw: "fw", CarParams.FingerprintSource.can: "can"}.get(source, "can")
    finger = {b: dict(addrs) for b, addrs in finger.items()}
    return FingerprintResult(candidate, how if candidate is not None else "none", finger, frames, vin,
                             tuple(car_fw), exact, time.monotonic() - start)

