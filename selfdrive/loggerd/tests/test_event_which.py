"""framing.event_which: the union tag read from the bytes must agree with pycapnp's which(); event_mono_time and
restamped read and set logMonoTime in the bytes, and nothing else."""

import random
import struct

import pytest

from cereal import log, messaging
from cereal.services import SERVICES
from selfdrive.loggerd.framing import (
    EVENT_UNION,
    event_mono_time,
    event_which,
    event_which_fast,
    is_one_message,
    restamped,
)

LIST_FIELDS = {f.name for f in log.Event.schema.node.struct.fields if f.slot.type.which() == "list"}


def event_bytes(service: str, size: int = 3) -> bytes:
    return messaging.new_message(service, size=size if service in LIST_FIELDS else None).to_bytes()


def pycapnp_which(dat: bytes) -> str:
    return messaging.log_from_bytes(dat).which()


def one_segment(words: bytes) -> bytes:
    return struct.pack("<II", 0, len(words) // 8) + words


def far_root(dat: bytes) -> bytes:
    """The same Event behind a far root pointer: segment 0 holds only a far pointer to a landing pad, which is
    the original root pointer now at word 0 of segment 1 (its offsets stay valid: nothing inside moved)."""
    assert struct.unpack_from("<I", dat)[0] == 0, "expects a one-segment message"
    body = dat[8:]
    far = 2 | (0 << 3) | (1 << 32)  # kind 2 (far), landing pad at word 0, in segment 1
    return struct.pack("<IIII", 1, 1, len(body) // 8, 0) + struct.pack("<Q", far) + body


class TestEventWhich:
    def test_union_table_is_every_service(self):
        assert sorted(EVENT_UNION.values()) == sorted(SERVICES)

    @pytest.mark.parametrize("service", sorted(SERVICES))
    def test_fast_path_agrees_with_pycapnp_for_every_service(self, service):
        dat = event_bytes(service)
        assert is_one_message(dat)
        assert event_which_fast(dat) == pycapnp_which(dat) == service  # fast path taken, no fallback

    def test_multi_segment_message(self):
        msg = messaging.new_message("can", size=3000)  # bigger than pycapnp's first segment
        for i, frame in enumerate(msg.can):
            frame.address, frame.dat = i, bytes(8)
        dat = msg.to_bytes()
        assert struct.unpack_from("<I", dat)[0] > 0, "test needs a multi-segment message"
        assert event_which_fast(dat) == pycapnp_which(dat) == "can"

    @pytest.mark.parametrize("service", ["carState", "deviceState", "can", "loggerState"])
    def test_far_root_pointer_falls_back_to_pycapnp(self, service):
        dat = far_root(event_bytes(service))
        assert is_one_message(dat)
        assert event_which_fast(dat) is None
        assert event_which(dat) == pycapnp_which(dat) == service

    def test_short_data_section_reads_the_default_tag(self):
        # An Event written by a schema with no union yet: a struct with one data word, so the tag reads as 0.
        ptr = (0 << 2) | (1 << 32) | (0 << 48)
        dat = one_segment(struct.pack("<QQ", ptr, 123))
        assert event_which_fast(dat) is None
        assert event_which(dat) == pycapnp_which(dat) == EVENT_UNION[0]

    def test_unknown_tag_and_unreadable_root_are_not_an_event(self):
        dat = bytearray(event_bytes("carState"))
        struct.pack_into("<H", dat, 16 + 2 * log.Event.schema.node.struct.discriminantOffset, 999)
        assert event_which(bytes(dat)) is None
        out_of_segment = one_segment(struct.pack("<Q", (100 << 2) | (2 << 32)))
        assert event_which(out_of_segment) is None
        assert event_which(one_segment(bytes(8))) == pycapnp_which(one_segment(bytes(8)))  # null root: default Event

    def test_damaged_messages_never_disagree_with_pycapnp(self):
        # Garbage in the root pointer or the tag: whenever pycapnp reads a which(), the fast path reads the same
        # one or defers to it.
        rng = random.Random(1)
        originals = [event_bytes(s) for s in sorted(SERVICES)]
        agreed = 0
        for _ in range(3000):
            dat = bytearray(rng.choice(originals))
            for _ in range(rng.randint(1, 3)):
                dat[rng.randrange(8, min(len(dat), 40))] = rng.randrange(256)
            dat = bytes(dat)
            try:
                expected = pycapnp_which(dat)
            except messaging.MalformedMessage:
                continue
            fast = event_which_fast(dat)
            assert fast is None or fast == expected
            assert event_which(dat) == expected
            agreed += 1
        assert agreed > 500


class TestLogMonoTime:
    @pytest.mark.parametrize("service", sorted(SERVICES))
    def test_restamped_changes_the_time_and_nothing_else(self, service):
        dat = event_bytes(service)
        ev = messaging.log_from_bytes(dat)
        new = restamped(dat, ev.logMonoTime + 123_456_789)
        assert len(new) == len(dat) and event_mono_time(new) == ev.logMonoTime + 123_456_789
        back = messaging.log_from_bytes(new).as_builder()
        back.logMonoTime = ev.logMonoTime
        assert back.to_bytes() == dat  # every other field as it was
        assert event_mono_time(dat) == ev.logMonoTime

    def test_car_params_of_several_segments(self):
        # card's carParams is a whole CarParams copied in: it may take more than one segment
        msg = messaging.new_message("carParams")
        msg.carParams.carFw = [{"ecu": "eps", "fwVersion": bytes(range(256)) * 8} for _ in range(40)]
        dat = msg.to_bytes()
        assert struct.unpack_from("<I", dat)[0] > 0, "test needs a multi-segment message"
        new = restamped(dat, 42)
        assert messaging.log_from_bytes(new).logMonoTime == 42
        assert messaging.log_from_bytes(new).carParams.carFw[39].fwVersion == bytes(range(256)) * 8

    def test_far_root_cannot_be_restamped_but_its_time_is_read(self):
        dat = far_root(event_bytes("carParams"))
        assert restamped(dat, 42) is None
        assert event_mono_time(dat) == messaging.log_from_bytes(dat).logMonoTime > 0

    def test_unreadable_event_has_no_time(self):
        out_of_segment = one_segment(struct.pack("<Q", (100 << 2) | (2 << 32)))
        assert event_mono_time(out_of_segment) is None and restamped(out_of_segment, 42) is None
