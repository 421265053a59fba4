"""CAN frames in and out of the `can` and `sendcan` messages: their lists of the schema's CanData struct on one side,
opendbc's `CanData(address, dat, src)` on the other (the one frame type of the code, with the same field names)."""

from collections.abc import Iterable, Sequence

from opendbc.car.can_definitions import CanData

from cereal import messaging


def can_list_message(service: str, frames: Sequence[CanData], valid: bool = True):
    """A `can` or `sendcan` message of `frames` (CanData, or the plain (address, dat, src) tuples opendbc's packer
    makes)."""
    msg = messaging.new_message(service, len(frames), valid=valid)
    for c, (address, dat, src) in zip(getattr(msg, service), frames, strict=True):
        c.address, c.dat, c.src = address, bytes(dat), src
    return msg


def frames_of(can_list: Iterable) -> list[CanData]:
    """The frames of a message's `can` or `sendcan` list."""
    return [CanData(c.address, bytes(c.dat), c.src) for c in can_list]
