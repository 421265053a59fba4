"""A small file of int64 words that several processes share through one mapping.

The driven clock (common.clock), the newest stamp of each service (cereal.messaging) and process replay's control
block (cereal.messaging.stepped) are such files in the run directory: one process writes, the others read what it
wrote at once, without a message or a system call per read.
"""

import mmap
import os

WORD = 8  # bytes: each word is a little-endian int64


def map_words(path: str, words: int, create: bool = False, writable: bool = True) -> mmap.mmap:
    """The first `words` words of `path`, mapped.

    `create`: the file is made (reading zeros) or grown to that size, never replaced, so a process that mapped it
    earlier keeps seeing what is written. Otherwise a missing file raises FileNotFoundError and one still shorter
    than asked (its writer has not sized it yet) raises ValueError."""
    size = words * WORD
    flags = os.O_RDWR | os.O_CREAT if create else os.O_RDWR if writable else os.O_RDONLY
    fd = os.open(path, flags, 0o644)
    try:
        if create and os.fstat(fd).st_size < size:
            os.ftruncate(fd, size)
        return mmap.mmap(fd, size, access=mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ)
    finally:
        os.close(fd)
