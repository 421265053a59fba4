"""A disk that fills mid-import, for the importers' tests: their message generator, failing after `n` messages."""

from collections.abc import Callable, Iterator


def fail_after(messages: Callable[..., Iterator], n: int) -> Callable[..., Iterator]:
    def failing(*args) -> Iterator:
        for i, msg in enumerate(messages(*args)):
            if i == n:
                raise OSError("disk full")
            yield msg
    return failing
