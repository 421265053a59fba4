"""Regenerates the process replay references: `python -m tests.process_replay.regen [daemon...]`.

Run it when a change of behaviour is intended (or the input routes changed), look at the diff that
`python -m tests.process_replay.process_replay` printed before, and commit ref/*.zst with the change.
"""

import sys
import time

from tests.process_replay.inputs import digest
from tests.process_replay.process_replay import apart, available, config, replay, run_inputs, save_ref


def main(argv: list[str] | None = None) -> int:
    names = (sys.argv[1:] if argv is None else argv) or [c.name for c in available()]
    for name in names:
        cfg = config(name)
        t = time.monotonic()
        inputs = run_inputs(cfg)
        # sockets and params of its own, as the comparison has: on the default prefix a stack running on this machine
        # (`roadpilot sim`) feeds the daemon its own messages, and they end up in the reference
        with apart(f"regen-{name}"):
            result = replay(cfg, inputs)
        path = save_ref(name, digest(inputs), result.outputs)
        print(f"{name}: {len(result.outputs)} outputs {sorted(result.published)} from {len(inputs)} inputs "
              f"(subscribed {sorted(result.subscribed)}) -> {path} in {time.monotonic() - t:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
