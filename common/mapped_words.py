"""A small file of int64 words that several processes share through one mapping.

The driven clock (common.clock), the newest stamp of each service (cereal.messaging) and process replay's control
block (cereal.messaging.stepped) are such files in the run directory: one process writes, the others read what it
wrote at once, without a message or a system call per read.

A word is read and written as one aligned 8-byte access (`as_words`), which another process never sees half done.
struct.pack_into is not that: it zeroes its target, then writes it byte by byte (and unpack_from reads byte by
byte), so a reader in another process could see 0 or a time torn between two steps: under the lockstep simulator
a deviceState was stamped 0, mid-drive, and sorted ahead of a segment's carParams.
"""

import mmap
import os
from collections.abc import Sequence

WORD = 8  # bytes: each word is an int64 in the machine's byte order (the files never leave the machine)


def _create(path: str, size: int, initial: Sequence[int]) -> None:
    """Makes `path` holding `initial` (zeros after) unless it exists: written aside, then linked into place, so a
    reader never maps it before its words are there."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        data = bytearray(size)
        view = memoryview(data).cast("q")
        for i, v in enumerate(initial):
            view[i] = v
        os.write(fd, data)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:  # another process made it first: theirs stays
        pass
    finally:
        os.unlink(tmp)


def map_words(path: str, words: int, create: bool = False, writable: bool = True,
              initial: Sequence[int] = ()) -> mmap.mmap:
    """The first `words` words of `path`, mapped.

    `create`: the file is made holding `initial` (zeros after) or grown to that size, never replaced, so a process
    that mapped it earlier keeps seeing what is written. Otherwise a missing file raises FileNotFoundError and one
    still shorter than asked raises ValueError."""
    size = words * WORD
    if create and not os.path.exists(path):
        _create(path, size, initial)
    fd = os.open(path, os.O_RDWR if create or writable else os.O_RDONLY)
    try:
        if create and os.fstat(fd).st_size < size:
            os.ftruncate(fd, size)
        return mmap.mmap(fd, size, access=mmap.ACCESS_WRITE if writable or create else mmap.ACCESS_READ)
    finally:
        os.close(fd)


def as_words(m: mmap.mmap) -> memoryview:
    """`m` as int64 words: `w[i]` reads and `w[i] = x` writes word i in one aligned 8-byte access (module doc).
    Release the view before closing the mapping."""
    return memoryview(m).cast("q")
