"""Where one Cap'n Proto message ends in a byte stream.

rlog/qlog hold framed capnp messages back to back (the standard stream framing, unpacked):
  u32 segment count - 1, one u32 size in 8-byte words per segment, zero padding to 8 bytes, the segments.
The header alone tells the message's length, so loggerd can check a message without parsing it and a
reader can split a stream (and see exactly where a truncated one stops) without trusting pycapnp to do it.
`event_which` reads which service an Event is from its bytes, just as cheaply; `event_mono_time` its
logMonoTime, and `restamped` changes nothing else in it (loggerd's latched copies, route_writer.py).
"""

import struct

from cereal import log
from cereal.messaging import MalformedMessage, log_from_bytes

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


# Which service a framed Event is, read from its bytes. loggerd checks every message (~2000/s) against the
# socket it came on; a full pycapnp parse costs ~10x more than these few unpacks. The layout is the capnp
# encoding spec's: segment 0 starts with the root pointer, a struct pointer holds (bits) 0-1 kind (0 = struct),
# 2-31 signed offset in words from the pointer's end, 32-47 data section words, 48-63 pointer count. The
# union's tag is a u16 in the data section at the offset the compiled schema names.
_EVENT = log.Event.schema.node.struct
_DISCRIMINANT_BYTE = 2 * _EVENT.discriminantOffset   # the schema counts it in 16-bit units
_NOT_IN_UNION = 0xFFFF                               # discriminantValue of a field outside the union
EVENT_UNION = {f.discriminantValue: f.name for f in _EVENT.fields if f.discriminantValue != _NOT_IN_UNION}
_MONO_TIME_BYTE = 8 * log.Event.schema.fields["logMonoTime"].proto.slot.offset  # a UInt64 slot counts 8-byte units


def _root_data(dat: bytes) -> tuple[int, int] | None:
    """(where the root struct's data section starts in `dat`, its length in bytes) of one framed message
    (`is_one_message(dat)` holds), or None when the root is not a struct pointer into segment 0 (a far or null
    pointer) or the struct does not fit in its segment."""
    nseg = struct.unpack_from("<I", dat)[0] + 1
    seg_words = struct.unpack_from("<I", dat, 4)[0]
    seg = (4 + 4 * nseg + 7) & ~7                    # segment 0 starts after the segment table
    if seg_words < 1:
        return None
    ptr = struct.unpack_from("<Q", dat, seg)[0]
    if ptr & 3 != 0 or ptr == 0:                     # not a struct pointer (far pointer), or null
        return None
    offset = (ptr >> 2) & 0x3FFFFFFF
    if offset & 0x20000000:
        offset -= 0x40000000                         # 30-bit two's complement
    data_words, ptr_count = (ptr >> 32) & 0xFFFF, ptr >> 48
    start = 1 + offset                               # in words from the start of segment 0
    if start < 0 or start + data_words + ptr_count > seg_words:
        return None
    return seg + 8 * start, 8 * data_words


def event_which_fast(dat: bytes) -> str | None:
    """The union member (`which()`) of one framed Event (`is_one_message(dat)` holds), read without parsing.

    None when the bytes are laid out in a way this does not read (a far or null root pointer, a struct out
    of its segment, a data section too short to hold the tag, a tag this schema does not know): ask
    `event_which`, which falls back to pycapnp for those.
    """
    root = _root_data(dat)
    if root is None or root[1] < _DISCRIMINANT_BYTE + 2:
        return None
    return EVENT_UNION.get(struct.unpack_from("<H", dat, root[0] + _DISCRIMINANT_BYTE)[0])


def restamped(dat: bytes, log_mono_time: int) -> bytes | None:
    """A copy of one framed Event (`is_one_message(dat)` holds) with its logMonoTime set to `log_mono_time` and
    every other byte as it was; None when its root is not laid out the way `_root_data` reads (pycapnp never
    writes such an Event: only a hand-made one is)."""
    root = _root_data(dat)
    if root is None or root[1] < _MONO_TIME_BYTE + 8:
        return None
    out = bytearray(dat)
    struct.pack_into("<Q", out, root[0] + _MONO_TIME_BYTE, log_mono_time)
    return bytes(out)


def event_mono_time(dat: bytes) -> int | None:
    """The logMonoTime of one framed Event (`is_one_message(dat)` holds), or None when it is not a readable Event."""
    root = _root_data(dat)
    if root is not None and root[1] >= _MONO_TIME_BYTE + 8:
        return struct.unpack_from("<Q", dat, root[0] + _MONO_TIME_BYTE)[0]
    try:
        return log_from_bytes(dat).logMonoTime  # the unusual layouts: pycapnp knows them all
    except MalformedMessage:
        return None


def event_which(dat: bytes) -> str | None:
    """The union member of one framed Event (`is_one_message(dat)` holds), or None when it is not a readable Event."""
    which = event_which_fast(dat)
    if which is not None:
        return which
    try:
        return log_from_bytes(dat).which()  # the unusual layouts: pycapnp knows them all
    except MalformedMessage:
        return None
