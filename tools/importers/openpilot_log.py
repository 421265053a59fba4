"""Reading openpilot's logs (rlog/qlog, bz2, zst or raw) into roadpilot Events: tools/importers/openpilot.py's half
that knows openpilot's schema.

opendbc ships a schema for openpilot logs (opendbc/car/rlog.capnp) whose Event declares `can` alone. The Event read
here is that one (the same CanData, the same layout) with openpilot's ordinals for the other members read
(OPENPILOT_MEMBERS) and the car structs from opendbc's car.capnp, which openpilot's log.capnp and ours both use. A
file is read up to its damage: a bz2/zstd stream cut short, a message cut in half or a header no message has ends
it, and what came before is kept.
"""

import bz2
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from functools import cache
from typing import IO, NamedTuple

import capnp
import zstandard

from cereal import CAR_SCHEMA_DIR, log
from hardware.can_backends import MAX_STD_ADDRESS, RawFrame, classify
from selfdrive.loggerd.framing import FramingError, message_size
from tools.importers.openpilot_video import CAMERA_MEMBERS, CameraEntry, camera_entry

# openpilot's cereal/log.capnp: Event union member -> (ordinal, type). Every member of that union is a pointer (a
# struct, list, text or data), so declaring the ones not read here Void keeps the compiled layout (logMonoTime in
# data word 0, the union's tag after it, its pointer in slot 0, `valid` the next bit) while skipping their structs.
OPENPILOT_MEMBERS = {"can": (5, "List(CanData)"), "sendcan": (17, "List(CanData)"),
                     "carState": (22, "Car.CarState"), "carParams": (69, "Car.CarParams"),
                     "roadCameraState": (2, "FrameData"), "roadEncodeIdx": (15, "EncodeIndex"),
                     "qRoadEncodeIdx": (90, "EncodeIndex")}
# openpilot's FrameData and EncodeIndex up to the last field read here, every earlier one with its type (an enum is a
# UInt16): a struct's fields are laid out in ordinal order, so the ones after these do not move them.
OPENPILOT_STRUCTS = """struct FrameData {
  frameId @0 :UInt32;
  encodeId @1 :UInt32;
  timestampEof @2 :UInt64;
  frameLengthDEPRECATED @3 :Int32;
  integLines @4 :Int32;
  globalGainDEPRECATED @5 :Int32;
  image @6 :Data;
  frameTypeDEPRECATED @7 :UInt16;
  timestampSof @8 :UInt64;
}
struct EncodeIndex {
  frameId @0 :UInt32;
  type @1 :UInt16;
  encodeId @2 :UInt32;
  segmentNum @3 :Int32;
  segmentId @4 :UInt32;
  segmentIdEncode @5 :UInt32;
  timestampSof @6 :UInt64;
  timestampEof @7 :UInt64;
}"""
OPENPILOT_VALID_ORDINAL = 67   # Event.valid @67 :Bool = true, outside the union
SENT_OFFSET = 128              # openpilot and roadpilot: 128 + n is the echo of what was sent on bus n
REJECTED_OFFSET = 192          # openpilot: 192 + n is what the panda's safety refused to send on bus n
BZ2_MAGIC, ZSTD_MAGIC = b"BZh", b"\x28\xb5\x2f\xfd"
READ_CHUNK = 1 << 16           # compressed bytes fed at a time
MAX_INFLATE = 1 << 22          # decompressed bytes taken at a time (bz2 can bound it)
FILLER = "unread"              # schema name prefix of the union members not read here


class OpenpilotLogError(ValueError):
    """A source that holds no openpilot log (the message names the file and why)."""


class Damage(NamedTuple):
    path: str
    what: str


class Msg(NamedTuple):
    logMonoTime: int
    dat: bytes


def schema_text(members: dict[str, tuple[int, str]] = OPENPILOT_MEMBERS, valid: int = OPENPILOT_VALID_ORDINAL,
                filler: str = "Void", file_id: int = 0xc2a9_5d6e_0f3b_4a71, structs: str = OPENPILOT_STRUCTS) -> str:
    """openpilot's Event with `members` at their ordinals and `filler` for every other one below the highest
    (capnp wants ordinals without gaps), and the `structs` they name. The tests write logs with `filler` a pointer
    type and more of openpilot's struct fields, as openpilot's own logs have them."""
    by_ordinal = {n: (name, kind) for name, (n, kind) in members.items()}
    top = max([valid, *by_ordinal])
    union = [f"    {by_ordinal.get(n, (f'{FILLER}{n}', filler))[0]} @{n} :{by_ordinal.get(n, ('', filler))[1]};"
             for n in range(1, top + 1) if n != valid]
    return "\n".join([
        f"@{file_id:#x};", 'using Car = import "/car.capnp";',
        "struct CanData {", "  address @0 :UInt32;", "  busTimeDEPRECATED @1 :UInt16;", "  dat @2 :Data;",
        "  src @3 :UInt8;", "}", structs,
        "struct Event {", "  logMonoTime @0 :UInt64;", f"  valid @{valid} :Bool = true;", "  union {",
        *union, "  }", "}", ""])


@cache
def load_schema(text: str):
    """The capnp module of `text` (schema_text), loaded once per process: pycapnp aborts on a file parsed twice."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "openpilot_log.capnp")
        with open(path, "w") as f:
            f.write(text)
        return capnp.load(path, imports=[CAR_SCHEMA_DIR])


# -- reading one file

def _bz2_chunks(f: IO[bytes]) -> Iterator[bytes]:
    d, started = bz2.BZ2Decompressor(), False
    while True:
        if d.eof:  # concatenated bz2 streams (pbzip2 writes them) are one log
            data, d, started = d.unused_data or f.read(READ_CHUNK), bz2.BZ2Decompressor(), False
            if not data:
                return
        elif d.needs_input:
            data = f.read(READ_CHUNK)
            if not data:
                if started:
                    raise EOFError("stream cut short")
                return
        else:
            data = b""  # output of the last input still waiting (MAX_INFLATE at a time)
        started = True
        yield d.decompress(data, MAX_INFLATE)


def _zstd_chunks(f: IO[bytes]) -> Iterator[bytes]:
    dctx, obj, fed = zstandard.ZstdDecompressor(), None, False
    pending = b""
    while True:
        data = pending or f.read(READ_CHUNK)
        pending = b""
        if not data:
            if fed:
                raise EOFError("stream cut short")
            return
        if obj is None:
            obj, fed = dctx.decompressobj(), True
        yield obj.decompress(data)
        if obj.eof:  # frames follow one another: each gets its own decompressor
            pending, obj, fed = obj.unused_data, None, False


def _raw_chunks(f: IO[bytes]) -> Iterator[bytes]:
    while data := f.read(READ_CHUNK):
        yield data


DECOMPRESSORS: dict[bytes, tuple[str, Callable[[IO[bytes]], Iterator[bytes]]]] = {
    BZ2_MAGIC: ("bz2", _bz2_chunks), ZSTD_MAGIC: ("zstd", _zstd_chunks), b"": ("raw", _raw_chunks)}


def read_messages(path: str, damage: list[Damage]) -> Iterator[bytes]:
    """Each framed capnp message of the openpilot log at `path`, whatever its compression; stops at the first damage
    and appends what it was to `damage`."""
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(0)
        kind, chunks = next(v for magic, v in DECOMPRESSORS.items() if head.startswith(magic))
        buf, off, at = bytearray(), 0, 0  # at: where buf starts in the decompressed stream
        try:
            for chunk in chunks(f):
                buf = buf[off:] + chunk
                at, off = at + off, 0
                while (size := message_size(buf, off)) is not None and off + size <= len(buf):
                    yield bytes(buf[off:off + size])
                    off += size
        except (EOFError, OSError, zstandard.ZstdError) as e:
            damage.append(Damage(path, f"{kind}: {e} (after {at + off} bytes of log)"))
            return
        except FramingError as e:
            damage.append(Damage(path, f"no message at byte {at + off} of the {kind} log ({e})"))
            return
        if off < len(buf):
            damage.append(Damage(path, f"cut short: {len(buf) - off} bytes of an incomplete message at the end"))


# -- openpilot Events -> roadpilot Events: one function per member kept, each fills that member of `msg`

def _can(ev, name: str, msg, dropped: Counter) -> None:
    kept = []
    for c in getattr(ev, name):
        address, dat, bus = c.address, bytes(c.dat), c.src
        if bus >= REJECTED_OFFSET:
            dropped["rejected_by_panda"] += 1
            continue
        sent = SENT_OFFSET if bus >= SENT_OFFSET else 0  # judged on the bus it went out on, kept at 128 + n
        frame, why = classify(RawFrame(address, dat, bus - sent, is_extended=address > MAX_STD_ADDRESS,
                                       is_fd=len(dat) > 8))
        if frame is None:
            dropped[why] += 1
        else:
            kept.append(frame._replace(src=bus))
    for c, (address, dat, bus) in zip(msg.init(name, len(kept)), kept, strict=True):
        c.address, c.dat, c.src = address, dat, bus


def _struct(ev, name: str, msg, dropped: Counter) -> None:
    setattr(msg, name, getattr(ev, name))  # the same car.capnp type: a whole copy, fields newer than ours included


CONVERT: dict[str, Callable] = {"can": _can, "sendcan": _can, "carState": _struct, "carParams": _struct}


class FileImport(NamedTuple):
    messages: list[Msg]   # converted, in time order
    read: Counter          # openpilot member -> messages read ("@n" for ordinal n, not read here; "unknown" beyond)
    dropped: Counter       # why -> frames dropped
    car: str | None        # the last carParams.carFingerprint
    camera: dict[str, list[CameraEntry]]  # CAMERA_MEMBERS -> their messages, for the video


def import_file(path: str, damage: list[Damage]) -> FileImport:
    """The convertible Events of one openpilot log. Raises OpenpilotLogError when nothing in it is an openpilot Event
    (its first message included); damage after a first good message is appended to `damage`."""
    event = load_schema(schema_text()).Event
    out, read, dropped, car, first_error = [], Counter(), Counter(), None, None
    camera: dict[str, list[CameraEntry]] = {member: [] for member in CAMERA_MEMBERS}
    own: list[Damage] = []
    for dat in read_messages(path, own):
        try:
            with event.from_bytes(dat) as ev:
                t, valid = ev.logMonoTime, ev.valid
                try:
                    which = ev.which()
                except capnp.KjException:  # a member newer than the highest ordinal declared here
                    read["unknown"] += 1
                    continue
                read[which if which in OPENPILOT_MEMBERS else f"@{which.removeprefix(FILLER)}"] += 1
                if which in camera:
                    camera[which].append(camera_entry(which, ev))
                if which not in CONVERT:
                    continue
                msg = log.Event.new_message(logMonoTime=t, valid=valid)
                CONVERT[which](ev, which, msg, dropped)
                if which == "carParams":
                    car = ev.carParams.carFingerprint or car
        except (capnp.KjException, ValueError) as e:
            first_error = first_error or str(e).splitlines()[0][:200]
            if not read:  # the very first message is no Event: not an openpilot log at all
                break
            dropped["malformed_messages"] += 1
            continue
        out.append(Msg(t, msg.to_bytes()))
    if not read:
        why = first_error or (own[0].what if own else "empty")
        raise OpenpilotLogError(f"{path}: not an openpilot log ({why})")
    damage.extend(own)
    out.sort(key=lambda m: m.logMonoTime)
    return FileImport(out, read, dropped, car, camera)
