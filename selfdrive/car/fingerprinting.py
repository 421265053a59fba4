"""Identifying the car from its CAN traffic (opendbc's FPv1 fingerprints), or taking a forced platform.

Fingerprinting watches the first 1-2 s of `can` messages. A platform is chosen when exactly one
candidate is left on bus 0 or 1 after FINGERPRINT_FRAMES messages; it fails when none is left, or after
MAX_FRAMES. Either way the window also records which addresses (and lengths) each bus carried, which
card uses to see how the car is wired (`car_specific.py`). Only the platforms opendbc still keeps
FPv1 fingerprints for can be found this way; the others (Toyota among them, which opendbc identifies
by ECU firmware queries) need the platform forced with `--car` or the CarOverride param.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from opendbc.car import gen_empty_fingerprint
from opendbc.car.can_definitions import CanData
from opendbc.car.car_helpers import interfaces
from opendbc.car.fingerprints import all_legacy_fingerprint_cars, eliminate_incompatible_cars

FINGERPRINT_FRAMES = 100  # `can` messages (1 s) to watch before a single candidate is accepted
MAX_FRAMES = 200          # give up after 2 s
FP_BUSES = (0, 1)         # where FPv1 fingerprints were recorded
IGNORED = frozenset((0x7DF, 0x7E0, 0x7E8))  # diagnostic requests/responses, not the car's own traffic


@dataclass(frozen=True)
class FingerprintResult:
    candidate: str | None         # opendbc platform name; None: not identified
    source: str                   # "can", "fixed" (forced), "none"
    fingerprint: dict[int, dict[int, int]]  # bus -> address -> length, as opendbc's get_params wants it
    frames: int                   # `can` messages watched, from the first one that carried a frame

    @property
    def buses_seen(self) -> frozenset[int]:
        return frozenset(b for b, addrs in self.fingerprint.items() if addrs)


def known_platform(name: str) -> bool:
    return name in interfaces and name != "MOCK"


class Fingerprinter:
    """Feed it one `can` message's frames at a time until `done`."""

    def __init__(self, forced: str | None = None):
        if forced is not None and not known_platform(forced):
            raise ValueError(f"unknown platform {forced!r}; opendbc platforms look like TOYOTA_RAV4")
        self.forced = forced
        self.fingerprint = gen_empty_fingerprint()
        self.candidates = {b: all_legacy_fingerprint_cars() for b in FP_BUSES} if forced is None else {}
        self.frames = 0
        self.found: str | None = None
        self.failed = False

    def add(self, frames: Iterable[tuple[int, bytes, int]]) -> None:
        """One `can` message's frames. The window starts at the first frame: empty messages before it
        (an adapter up before the car wakes, a replay not started yet) say nothing about the car."""
        frames = list(frames)
        if self.frames == 0 and not frames:
            return
        for address, dat, src in frames:
            if src >= 128:
                continue  # our own transmissions echoed back
            self.fingerprint.setdefault(src, {})[address] = len(dat)
            if src in self.candidates and address < 0x800 and address not in IGNORED and self.candidates[src]:
                self.candidates[src] = eliminate_incompatible_cars(CanData(address, dat, src), self.candidates[src])
        self.frames += 1
        if self.forced is None:
            for cands in self.candidates.values():
                if len(cands) == 1 and self.frames > FINGERPRINT_FRAMES:
                    self.found = cands[0]
            none_left = all(len(c) == 0 for c in self.candidates.values())
            gave_up = (none_left and self.frames > FINGERPRINT_FRAMES) or self.frames > MAX_FRAMES
            self.failed = self.found is None and gave_up

    @property
    def done(self) -> bool:
        if self.forced is not None:
            return self.frames >= FINGERPRINT_FRAMES
        return self.found is not None or self.failed

    def result(self) -> FingerprintResult:
        if self.forced is not None:
            return FingerprintResult(self.forced, "fixed", self.fingerprint, self.frames)
        if self.found is not None:
            return FingerprintResult(self.found, "can", self.fingerprint, self.frames)
        return FingerprintResult(None, "none", self.fingerprint, self.frames)
