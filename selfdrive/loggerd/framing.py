"""Where one Cap'n Proto message ends in a byte stream.

rlog/qlog hold framed capnp messages back to back (the standard stream framing, unpacked):
  u32 segment count - 1, one u32 size in 8-byte words per segment, zero padding to 8 bytes, the segments.
The header alone tells the message's length, so loggerd can check a message without parsing it and a
reader can split a stream (and see exactly where a truncated one stops) without trusting pycapnp to do it.
"""

import struct

MAX_SEGMENTS = 512                 # same bound as cereal.messaging: a sane Event never has more
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # camera frames travel through VisionIPC, so a bigger Event is garbage


class FramingError(ValueError):
    """A header that no real message has: the stream cannot be split past this point."""


def message_size(buf: bytes | bytearray | memoryview, off: int = 0) -> int | None:
    """Total bytes of the framed message that starts at `off`, or None when `buf` ends inside its header.

    Whether the body is complete is the caller's check (`off + size <= len(buf)`). Raises FramingError.
    """
    avail = len(buf) - off
    if avail < 4:
        return None
    nseg = struct.unpack_from("<I", buf, off)[0] + 1
    if nseg > MAX_SEGMENTS:
        raise FramingError(f"header claims {nseg} segments (at most {MAX_SEGMENTS})")
    header = (4 + 4 * nseg + 7) & ~7
    if avail < header:
        return None
    total = header + 8 * sum(struct.unpack_from(f"<{nseg}I", buf, off + 4))
    if total > MAX_MESSAGE_BYTES:
        raise FramingError(f"header claims a {total}-byte message (at most {MAX_MESSAGE_BYTES})")
    if total == header:
        raise FramingError("header claims an empty message")
    return total


def is_one_message(dat: bytes) -> bool:
    """True when `dat` is exactly one framed message (what loggerd checks before writing it)."""
    try:
        return len(dat) % 8 == 0 and message_size(dat) == len(dat)
    except FramingError:
        return False
