"""The CAN adapter of a lockstep run: canbridged's logic (`CanBridge`: the C safety layer on every frame
sent, echoes, garbage counts), run inside the bridge so that `can` goes out once per simulated 10 ms
step on the bus clock instead of on canbridged's wall-clock tick. The stack cannot tell: it gets the same
`can` messages, and its `sendcan` passes the same safety layer before it reaches the car.

The bus clock starts at the bridge's start (CLOCK_MONOTONIC) and advances exactly 10 ms per `can`
message; it stamps `can` (logMonoTime) and is the safety layer's time, so no wall-clock interval ever
reaches the car or the safety state.
"""

from cereal import messaging
from common.params import Params
from common.swaglog import cloudlog
from hardware.can_backends import Backend, CanFrame, RawFrame
from hardware.canbridged import IDENTIFYING, STATE_EVERY, CanBridge, CarGate, can_message

Frame = tuple[int, bytes, int]
PARAMS_POLL_STEPS = 10  # bus steps between looks at the CarParams param while no safety mode is known


class LocalBus(Backend):
    """The car's bus inside the bridge: what the car put on it, what the adapter sent to it."""

    url = "sim:lockstep"

    def __init__(self):
        self.from_car: list[Frame] = []
        self.to_car: list[Frame] = []

    def recv(self) -> list[RawFrame]:
        out = [RawFrame(a, d, b, is_extended=a > 0x7FF) for a, d, b in self.from_car]
        self.from_car = []
        return out

    def send(self, frame: CanFrame) -> None:
        self.to_car.append((frame.address, frame.dat, frame.src))

    def take(self) -> list[Frame]:
        out, self.to_car = self.to_car, []
        return out


class LockstepCan:
    """Publishes one `can` per step and applies the stack's `sendcan` through the safety layer."""

    def __init__(self, pm: messaging.PubMaster, t0_ns: int, forced_safety: tuple[str, int] | None = None,
                 clock=None):
        self.pm = pm
        self.clock = clock  # common.clock.DrivenClock: the stack's clock, moved to each step's time before its `can`
        self.bus = LocalBus()
        self.adapter = CanBridge(self.bus)
        self.t0_ns = t0_ns
        self.published = 0
        self.forced = forced_safety is not None
        self.gate = None if self.forced else CarGate(self.adapter)  # canbridged's rule: ELM327, silent, the car's
        self.params = Params()
        self.params_polled = -PARAMS_POLL_STEPS
        if forced_safety is not None:
            self.adapter.set_mode(*forced_safety)

    @property
    def now_ns(self) -> int:
        return self.t0_ns + self.published * 10_000_000

    def publish(self, frames: list[Frame]) -> int:
        """Puts one step's car frames on `can` (with the echo of what was sent); returns its logMonoTime."""
        self.published += 1
        if self.clock is not None:
            self.clock.set_ns(self.now_ns)
        self.bus.from_car = list(frames)
        msg = can_message(self.adapter.receive(self.now_ns // 1000))
        msg.logMonoTime = self.now_ns
        self.pm.send("can", msg)
        if self.published % STATE_EVERY == 1:
            state = self.adapter.state_message(CarGate.label(self.gate))
            state.logMonoTime = self.now_ns
            self.pm.send("adapterState", state)
        return self.now_ns

    def on_sendcan(self, dat: bytes) -> int:
        """Applies one `sendcan` message at the current bus time; returns the frames that reached the car."""
        try:
            ev = messaging.log_from_bytes(dat)
            frames = [(c.address, bytes(c.dat), c.src) for c in ev.sendcan]
        except (messaging.MalformedMessage, AttributeError) as e:
            self.adapter.counts["sendcan_bad"] += 1
            cloudlog.warning("malformed sendcan dropped", extra={"error": str(e)[:200]})
            return 0
        return self.adapter.transmit(frames, self.now_ns // 1000)

    def on_car_control(self) -> None:
        self.adapter.heartbeat(self.now_ns // 1000)

    def poll_params(self) -> None:
        """Until a safety mode is known: card also writes CarParams to params (its one carParams message
        may have come before our subscription was connected), as canbridged reads it."""
        if self.gate is None or self.gate.state != IDENTIFYING:
            return
        if self.published - self.params_polled < PARAMS_POLL_STEPS:
            return
        self.params_polled = self.published
        cp = self.params.get("CarParams")
        if cp:
            self.on_car_params(cp)

    def on_car_params(self, cp_bytes: bytes) -> None:
        if self.gate is not None:
            self.gate.on_car_params(cp_bytes)

    def on_car_params_message(self, cp) -> None:
        if self.gate is not None:
            self.gate.on_car_params_message(cp)

    def on_car_state(self, can_valid: bool) -> None:
        if self.gate is not None:
            self.gate.on_car_state(can_valid)

    def take_commands(self) -> list[Frame]:
        return self.bus.take()
