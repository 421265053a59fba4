"""A process that writes large, self-describing values to one params key as fast as it can, for the
kill and concurrency tests. `python -m common.tests.params_writer ROOT KEY FIRST_SEQ`: writes
payload(FIRST_SEQ), payload(FIRST_SEQ + 1), ... forever and prints "ready" after the first one landed."""

import struct
import sys

from common.params import Params

HEADER = struct.Struct("<QI")  # sequence number, total length


def payload(seq: int) -> bytes:
    """Value number `seq`: 0.5-3 MB, its length and filler byte both depend on seq, so any mix of two
    values (a torn write) or a cut-off one differs from every payload."""
    size = 500_000 + (seq * 7919) % 2_500_000
    return HEADER.pack(seq, size) + bytes([seq % 251]) * (size - HEADER.size)


def seq_of(value: bytes) -> int | None:
    """The sequence number of a complete, untorn payload; None for anything else."""
    if value is None or len(value) < HEADER.size:
        return None
    seq, size = HEADER.unpack_from(value)
    return seq if value == payload(seq) else None


def main(root: str, key: str, first_seq: int) -> None:
    params = Params(root)
    seq = first_seq
    while True:
        params.put(key, payload(seq))
        if seq == first_seq:
            print("ready", flush=True)
        seq += 1


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
