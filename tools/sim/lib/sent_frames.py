"""What left for the car, judged a second time, from the `can` stream a drive recorded.

The adapter echoes every frame it sent in the next `can` message (bus + ECHO_BUS_OFFSET), so the `can` stream holds
the bus in order. The echoes go through the safety layer again (opendbc's Toyota mode, a copy in this process with
the adapter's param) as tx at the bus time they were sent, the car's frames as rx. The heartbeat (controlsd alive)
is not on the bus: it is taken as fresh at every step. Fed one message at a time, so an hour of driving is judged
without keeping it in memory.

A recording with gaps (loggerd killed, the disk full) is judged in runs: a fresh copy after each gap. The copy then
knows nothing of what happened in the gap (whether the cruise engaged, the torque history its rate limits need), so
it judges nothing until the car's cruise is seen off in a valid PCM_CRUISE: from there a fresh layer and the one on
the bus agree (controls not allowed, no torque commanded). Frames sent before that are counted in `unjudged`.

The copy sees only what was sent, the layer on the bus also what it refused: when card restarts, its message
counter starts over, the layer refuses the first frame for its counter and takes the next as the sequence's
continuation, where the copy (which never saw the refused one) finds a jump. A COUNTER verdict is therefore counted
apart (`counter_breaks`), for the caller to match against the frames the adapter refused for their counter; the
frame it falls on is judged no further (the layer checks the counter first).
"""

from cereal import messaging
from hardware.canbridged import ECHO_BUS_OFFSET
from selfdrive.car.fingerprinting import is_diagnostic
from selfdrive.car.safety import Safety, SafetyMode

STEERING_LKA, ACC_CONTROL, PCM_CRUISE = 0x2E4, 0x343, 0x1D2
MAX_KEPT = 100  # violations kept verbatim; all are counted
GAP_US = 500_000  # `can` is recorded at 100 Hz: this long without one is a gap in the recording


def s16(data: bytes, i: int) -> int:
    return int.from_bytes(data[i:i + 2], "big", signed=True)


class SentFrameCheck:
    """Feed `can` Events in recorded order; `bad` lists the sent frames the rules refuse, `sent` counts the echoes.

    A gap in the `can` stream (GAP_US) restarts the copy (see the module's text)."""

    def __init__(self, param: int):
        self.param = param
        self.bad: list[str] = []
        self.violations = 0
        self.sent = 0
        self.unjudged = 0
        self.counter_breaks = 0
        self.gaps = 0
        self.safety = Safety(SafetyMode.TOYOTA, self.param)
        self.cruise = False  # CRUISE_ACTIVE of the last PCM_CRUISE the layer took as valid (not garbage)
        self.prev_t: int | None = None
        self.synced = True   # from the start of a drive the copy has seen everything the layer on the bus saw

    def restart(self) -> None:
        """A gap in the recording: a fresh copy, judging again once the car's cruise is seen off."""
        if self.prev_t is None:
            return
        self.safety = Safety(SafetyMode.TOYOTA, self.param)
        self.cruise = False
        self.prev_t = None
        self.synced = False
        self.gaps += 1

    def _refuse(self, why: str) -> None:
        self.violations += 1
        if len(self.bad) < MAX_KEPT:
            self.bad.append(why)

    def feed(self, dat: bytes) -> None:
        ev = messaging.log_from_bytes(dat)
        t = ev.logMonoTime // 1000
        if self.prev_t is not None and t - self.prev_t > GAP_US:
            self.restart()
        for c in ev.can:
            if c.src < ECHO_BUS_OFFSET or self.prev_t is None:
                continue
            addr, data, bus = c.address, bytes(c.dat), c.src - ECHO_BUS_OFFSET
            self.sent += 1
            if not self.synced:
                self.unjudged += 1
                continue
            if is_diagnostic(addr):
                continue  # card's identification queries, sent (and judged) in ELM327 mode before the car's mode
            self.safety.heartbeat(self.prev_t)
            verdict = self.safety.tx_verdict(addr, bus, data, self.prev_t)
            if verdict == "COUNTER":
                self.counter_breaks += 1
            elif verdict != "OK":
                self._refuse(f"{self.prev_t} us {addr:#x} {data.hex()}: {verdict}")
            # the layer's NOT_ALLOWED says it too; spelled out: no steering or acceleration while the car's cruise
            # (as the valid PCM_CRUISE frames tell it) is off
            commanding = (addr == STEERING_LKA and (data[0] & 1 or s16(data, 1))) or \
                         (addr == ACC_CONTROL and s16(data, 0))
            if commanding and not self.cruise:
                self._refuse(f"{self.prev_t} us {addr:#x} {data.hex()}: a command while the car's cruise is off")
        self.safety.heartbeat(t)
        for c in ev.can:
            if c.src < ECHO_BUS_OFFSET:
                valid = self.safety.rx(c.address, c.src, bytes(c.dat), t)
                if valid and c.address == PCM_CRUISE and c.src == 0 and len(c.dat) == 8:
                    self.cruise = bool(c.dat[0] & 0x20)
                    self.synced |= not self.cruise
        self.prev_t = t


def sent_frame_violations(can_msgs: list[bytes], param: int) -> tuple[list[str], int]:
    """Every `can` message of one drive without restarts: (the refused sent frames, the echoes judged). Nothing was
    refused on the bus there, so a break in the counter sequence is a refusal too."""
    check = SentFrameCheck(param)
    for dat in can_msgs:
        check.feed(dat)
    breaks = [f"{check.counter_breaks} sent frames break the counter sequence"] if check.counter_breaks else []
    return check.bad + breaks, check.sent
