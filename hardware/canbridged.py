"""canbridged: moves frames between a CAN backend (`can_backends.py`) and the `can` / `sendcan` services.

Every 10 ms it publishes one `can` message with everything the backend received (empty when nothing
came, so readers see a silent bus as a silent bus, not as a dead bridge), plus the echo of what it sent
(bus 128+n, the car port's convention). A backend with its own clock (the lockstep simulator's car, whose steps
are the driven clock's time: Backend.step_socket) sets the pace instead: one `can` per step it delivers. Its time
is common.clock's: the machine's on a car, the world's in lockstep.

Each `sendcan` frame goes through the C safety layer first; a frame it refuses is dropped and counted. The car's
own frames feed the safety layer's rx hook, and each `carControl` from controlsd is its heartbeat. Garbage from the
backend (error frames, addresses that are not CAN ids, over-long frames) is counted and dropped. Counters go to the
log once a second while they change, and at exit.

The safety mode follows what card knows of the car (`CarGate`):
  1. identifying (no carParams yet): ELM327, diagnostic frames only (card's firmware and VIN queries);
  2. identified (carParams names a safety mode): silent until the bus agrees, i.e. card has said canValid for
     BUS_AGREE_CYCLES carStates in a row (every message the platform needs, with valid checksums and counters,
     on the buses it expects); a forced platform the bus contradicts never gets there, so nothing is sent;
  3. the bus agrees: the car's own safety mode (opendbc's);
  dashcam (carParams.dashcamOnly: a car that is not recognised): silent for good.
What the safety layer decides reaches the stack as `adapterState` (2 Hz): its mode, how far the car was agreed,
whether controls are allowed, and a latched relay malfunction, which selfdrived turns into the driver's alert
(every frame is refused from then on, and without it the driver would only see the cruise drop again and again).
"""

import argparse
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import Iterable
from typing import TextIO

import capnp
import zmq
from opendbc.car.can_definitions import CanData

from cereal import car, messaging
from cereal.can_frames import can_list_message, frames_of
from common import clock
from common.params import Params
from common.realtime import DT_CTRL, PRIO_CTRL_HIGH, Ratekeeper, set_realtime_priority
from common.swaglog import cloudlog, cloudlog_bind
from hardware.can_backends import Backend, BackendError, backend_names, classify, open_backend
from selfdrive.car.car_params import car_params_copy

PUBLISHES = ("can", "adapterState")
BUS_AGREE_CYCLES = 50  # carStates in a row with canValid (0.5 s) before the car's safety mode is enabled
SENDCAN_MAX_AGE_NS = 1_000_000_000  # older sendcan is not what controls wants now (openpilot's rule too)
STATUS_PERIOD_S = 1.0
STATE_EVERY = 50      # 10 ms cycles between adapterState messages (2 Hz, as the service table says)
LAG_LOG_S = 0.05
PARAMS_POLL_S = 0.1  # until a safety mode is known; every wait here is time the car cannot be engaged
ECHO_BUS_OFFSET = 128
STEP_POLL_MS = 100   # a bus with its own clock: how often we look around while it is silent (log, stop)


def _load_safety():
    """The safety layer's module, or None (then nothing is ever sent: fail closed)."""
    try:
        from selfdrive.car import safety
        return safety
    except ImportError as e:  # not built: every frame is refused
        cloudlog.error("safety layer not available: refusing every frame", extra={"error": str(e)[:300]})
        return None


class CanBridge:
    """The bridge's logic, free of sockets: tests drive it directly."""

    def __init__(self, backend: Backend, tx_log: TextIO | None = None):
        self.backend = backend
        self.tx_log = tx_log
        self.safety_mod = _load_safety()
        self.safety = None
        self.mode_name = "none"
        self.rx_garbage: Counter[str] = Counter()
        self.tx_blocked: Counter[str] = Counter()  # "<reason>:0x<addr>" -> count
        self.counts: Counter[str] = Counter()      # rx, rx_safety_invalid, tx, tx_sent, tx_error, tx_stale, sendcan_bad
        self._rx: list[CanData] = []
        self._echo: list[CanData] = []
        self.set_mode("silent", 0)

    def set_mode(self, mode: str | int, param: int) -> bool:
        """Selects the safety mode by name or opendbc SafetyModel number; unknown ones leave it silent."""
        if self.safety_mod is None:
            return False
        SafetyMode = self.safety_mod.SafetyMode
        try:
            m = SafetyMode[mode.upper()] if isinstance(mode, str) else SafetyMode(mode)
        except (KeyError, ValueError):
            cloudlog.error("safety mode not built: staying silent", extra={"mode": str(mode)})
            m, param = SafetyMode.SILENT, 0
        try:
            self.safety = self.safety_mod.Safety(m, param)
        except ValueError as e:
            cloudlog.error("safety mode rejected its param: staying silent", extra={"mode": m.name, "param": param,
                                                                                  "error": str(e)})
            self.safety = self.safety_mod.Safety(SafetyMode.SILENT, 0)
            m, param = SafetyMode.SILENT, 0
        self.mode_name = f"{m.name.lower()}:{param}"
        cloudlog.info("safety mode set", extra={"mode": self.mode_name})
        return True

    def poll(self, now_us: int) -> None:
        """Takes what the backend has now: garbage counted and dropped, the car's frames into the safety
        layer's rx hook and into the next `can` message."""
        for raw in self.backend.recv():
            frame, why = classify(raw)
            if frame is None:
                self.rx_garbage[why] += 1
                continue
            self.counts["rx"] += 1
            if self.safety is not None and not self.safety.rx(frame.address, frame.src, frame.dat, now_us):
                self.counts["rx_safety_invalid"] += 1  # still published: card judges the car's frames itself
            self._rx.append(frame)

    def receive(self, now_us: int) -> list[CanData]:
        """Everything for one `can` message: the car's frames since the last one, then our echoes."""
        self.poll(now_us)
        out, self._rx, self._echo = self._rx + self._echo, [], []
        return out

    def transmit(self, frames: Iterable[CanData], now_us: int) -> int:
        """Sends what the safety layer allows; returns how many frames left for the car."""
        sent = 0
        for address, dat, bus in frames:
            self.counts["tx"] += 1
            if self.safety is None or not self.safety.tx(address, bus, dat, now_us):
                self.tx_blocked[f"{self._refusal_reason()}:{address:#x}"] += 1
                continue
            try:
                self.backend.send(CanData(address, dat, bus))
            except BackendError as e:
                self.counts["tx_error"] += 1
                cloudlog.warning("CAN send failed", extra={"address": address, "bus": bus, "error": str(e)[:200]})
                continue
            sent += 1
            self.counts["tx_sent"] += 1
            self._echo.append(CanData(address, dat, bus + ECHO_BUS_OFFSET))
            if self.tx_log is not None:
                line = {"t_us": now_us, "address": address, "bus": bus, "data": dat.hex()}
                self.tx_log.write(json.dumps(line) + "\n")
        return sent

    def _refusal_reason(self) -> str:
        if self.safety is None:
            return "no_safety"
        return str(self.safety.last_reason or "refused")

    def heartbeat(self, now_us: int) -> None:
        if self.safety is not None:
            self.safety.heartbeat(now_us)

    def state_message(self, car_state: str):
        """adapterState: what the safety layer decided, for selfdrived and the log."""
        msg = messaging.new_message("adapterState")
        st = msg.adapterState
        st.safetyMode, st.car = self.mode_name, car_state
        st.controlsAllowed = bool(self.safety is not None and self.safety.controls_allowed)
        st.relayMalfunction = bool(self.safety is not None and self.safety.relay_malfunction)
        st.txSent, st.txBlocked = self.counts["tx_sent"], sum(self.tx_blocked.values())
        st.rxGarbage = sum(self.rx_garbage.values())
        return msg

    def status(self) -> dict:
        allowed = bool(self.safety is not None and self.safety.controls_allowed)
        rx_refused = self.safety.counters["rx_refused"] if self.safety is not None else {}
        return {"mode": self.mode_name, "controls_allowed": allowed, **self.counts, "rx_garbage": dict(self.rx_garbage),
                "rx_safety_refused": rx_refused, "tx_blocked": dict(self.tx_blocked)}


def handle_sendcan(bridge: CanBridge, dat: bytes, now_ns: int) -> None:
    try:
        ev = messaging.log_from_bytes(dat)
        if ev.which() != "sendcan":
            raise messaging.MalformedMessage(f"a {ev.which()} message on the sendcan socket")
        # log_from_bytes checks the root and union pointers only: a frame's dat pointer out of bounds raises here
        frames = frames_of(ev.sendcan)
    except (messaging.MalformedMessage, AttributeError, capnp.KjException) as e:
        bridge.counts["sendcan_bad"] += 1
        cloudlog.warning("malformed sendcan dropped", extra={"error": str(e)[:200]})
        return
    if now_ns - ev.logMonoTime > SENDCAN_MAX_AGE_NS:
        bridge.counts["tx_stale"] += len(frames)
        bridge.backend.end_sendcan(ev.logMonoTime)
        return
    bridge.poll(now_ns // 1000)  # judge the frames against the freshest car state (a brake pressed just now)
    bridge.transmit(frames, now_ns // 1000)
    bridge.backend.end_sendcan(ev.logMonoTime)


def safety_from_car_params(cp_bytes: bytes) -> tuple[int, int] | None:
    """(opendbc SafetyModel number, param) of the first safety config in serialized CarParams; None when there is
    none, the bytes are not a CarParams, or the car is dashcam only (not recognised)."""
    try:
        with car.CarParams.from_bytes(cp_bytes) as cp:
            if len(cp.safetyConfigs) == 0 or cp.dashcamOnly:
                return None
            sc = cp.safetyConfigs[0]
            return sc.safetyModel.raw, int(sc.safetyParam)
    except Exception as e:  # noqa: BLE001 - any corrupt bytes: keep the current (silent) mode
        cloudlog.warning("unreadable CarParams for the safety mode", extra={"error": str(e)[:200]})
        return None


IDENTIFYING, WAITING_FOR_BUS, ENABLED, DASHCAM = "identifying", "waiting for the bus to agree", "enabled", "dashcam"
FORCED = "forced mode"  # no gate: the safety mode was named on the command line (tests, a bench)


class CarGate:
    """Which safety mode the bridge may be in, from what card says of the car (see the module doc)."""

    def __init__(self, bridge: CanBridge):
        self.bridge = bridge
        self.state = IDENTIFYING
        self.target: tuple[int, int] | None = None  # the car's safety mode, once carParams names it
        self.agreed = 0
        bridge.set_mode("elm327", 0)

    def on_car_params(self, cp_bytes: bytes) -> None:
        target = safety_from_car_params(cp_bytes)
        if target is None:
            if self.state != DASHCAM:
                self._to(DASHCAM, "silent", 0)
            return
        if target != self.target:
            self.target, self.agreed = target, 0
            self._to(WAITING_FOR_BUS, "silent", 0)

    def on_car_params_message(self, cp) -> None:
        """A carParams message's struct, or None when the message itself was unreadable. Copied out, not
        as_builder() (see car_params_copy); a damaged one is treated like unreadable CarParams bytes: no safety
        mode (silent) until a readable carParams comes."""
        try:
            if cp is None:
                raise ValueError("unreadable carParams message")
            cp_bytes = car_params_copy(cp).to_bytes()
        except ValueError as e:
            cloudlog.warning("unreadable carParams message", extra={"error": str(e)[:200]})
            cp_bytes = b""
        self.on_car_params(cp_bytes)

    @staticmethod
    def label(gate: "CarGate | None") -> str:
        """What adapterState and the status log say of the car: the gate's state, or that the mode was forced."""
        return FORCED if gate is None else gate.state

    def on_car_state(self, can_valid: bool) -> None:
        if self.state != WAITING_FOR_BUS or self.target is None:
            return
        self.agreed = self.agreed + 1 if can_valid else 0
        if self.agreed >= BUS_AGREE_CYCLES:
            self._to(ENABLED, *self.target)

    def _to(self, state: str, mode: str | int, param: int) -> None:
        self.state = state
        self.bridge.set_mode(mode, param)
        cloudlog.info(f"safety: {state}", extra={"mode": self.bridge.mode_name})


class Daemon:
    def __init__(self, bridge: CanBridge, forced_mode: tuple[str, int] | None):
        self.bridge = bridge
        self.pm = messaging.PubMaster(list(PUBLISHES))
        self.sendcan = messaging.sub_sock("sendcan")
        self.sm = messaging.SubMaster(["carControl", "carParams", "carState"])
        self.params = Params()
        self.forced = forced_mode is not None
        self.gate = None if self.forced else CarGate(bridge)
        self.params_polled = 0.0
        if forced_mode is not None:
            bridge.set_mode(*forced_mode)
        self.last_status: dict = {}
        self.last_status_t = 0.0
        self.cycles = 0

    def update_mode(self, now: float) -> None:
        gate = self.gate
        if self.sm.updated["carParams"]:
            gate.on_car_params_message(self.sm["carParams"])
        elif gate.state == IDENTIFYING and now - self.params_polled >= PARAMS_POLL_S:
            # card also writes CarParams to params: the way in when its one carParams message came
            # before our subscription was connected
            self.params_polled = now
            if cp_bytes := self.params.get("CarParams"):
                gate.on_car_params(cp_bytes)
        if self.sm.updated["carState"]:
            gate.on_car_state(bool(self.sm["carState"].canValid))

    @property
    def car_state(self) -> str:
        return CarGate.label(self.gate)

    def log_status(self, now: float, force: bool = False) -> None:
        st = {**self.bridge.status(), "car": self.car_state}
        if force or (st != self.last_status and now - self.last_status_t >= STATUS_PERIOD_S):
            cloudlog.info("canbridged status", extra={"status": st})
            self.last_status, self.last_status_t = st, now

    def tick(self, now_ns: int) -> None:
        """One `can` message: what the car sent since the last one; then the heartbeat, the safety mode, the status."""
        self.pm.send("can", can_list_message("can", self.bridge.receive(now_ns // 1000)))
        self.sm.update(0)
        if self.sm.updated["carControl"]:
            # when controlsd was alive (the message's time), not when we got to it: never later than true
            self.bridge.heartbeat(min(self.sm.logMonoTime["carControl"], now_ns) // 1000)
        now = now_ns * 1e-9
        if not self.forced:
            self.update_mode(now)
        self.log_status(now)
        if self.cycles % STATE_EVERY == 0:
            self.pm.send("adapterState", self.bridge.state_message(self.car_state))
        self.cycles += 1

    def run(self) -> None:
        """On our own 10 ms tick; between ticks, whatever sendcan brings is sent as soon as it comes. The
        Ratekeeper logs when a cycle runs late (LAG_LOG_S): stalls make the car's frames arrive late, which card
        reports as timed-out messages, and the log says why."""
        rk = Ratekeeper(1.0 / DT_CTRL, print_delay_threshold=LAG_LOG_S)
        while True:
            self.tick(clock.monotonic_ns())
            rk.monitor_time()
            deadline = clock.monotonic() + rk.remaining
            while (left := deadline - clock.monotonic()) > 0:
                dat = self.sendcan.receive(max(1, int(left * 1000)))
                if dat is not None:
                    handle_sendcan(self.bridge, dat, clock.monotonic_ns())

    def run_stepped(self, step_socket) -> None:
        """The bus has its own clock (the lockstep simulator's car: Backend.step_socket): one tick per step the car
        sends, at the step's time (on the driven clock, which the simulator moved before it sent the step); between
        steps, whatever sendcan brings is sent as soon as it comes."""
        poller = zmq.Poller()
        poller.register(self.sendcan.sock, zmq.POLLIN)
        poller.register(step_socket, zmq.POLLIN)
        while True:
            ready = dict(poller.poll(STEP_POLL_MS))
            while (dat := self.sendcan.receive(0)) is not None:  # the answer to the last step before the next step
                handle_sendcan(self.bridge, dat, clock.monotonic_ns())
            if step_socket in ready:
                self.tick(clock.monotonic_ns())


def parse_safety(s: str) -> tuple[str, int]:
    mode, _, param = s.partition(":")
    return mode, int(param or 0, 0)


def main(argv: list[str] | None = None) -> None:
    cloudlog_bind(name="canbridged")
    ap = argparse.ArgumentParser(prog="canbridged", description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default=os.environ.get("ROADPILOT_CAN_BACKEND", "sim"),
                    help="<interface>:<channel> (udp_multicast:239.74.163.2 connects processes without an adapter), "
                         "replay:<path> (a roadpilot route or log, a comma2k19 folder, or a CAN log python-can reads: "
                         "candump -L .log, .asc, .blf, .trc, .csv, .db; ?bus=can0:0,can1:2 maps its channels) or sim; "
                         f"interfaces: {', '.join(backend_names())}; details in hardware/can_backends.py")
    ap.add_argument("--safety", type=parse_safety, default=None,
                    help="force a safety mode, e.g. toyota:0x149 (default: from carParams)")
    ap.add_argument("--tx-log", default=None, help="append every frame sent to the backend to this file (JSON lines)")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)

    try:
        backend = open_backend(args.backend)
    except BackendError as e:
        cloudlog.error(f"canbridged: {e}")
        sys.exit(2)
    set_realtime_priority(PRIO_CTRL_HIGH)
    tx_log = open(args.tx_log, "a", buffering=1) if args.tx_log else None  # noqa: SIM115 - open for the process's life
    daemon = Daemon(CanBridge(backend, tx_log), args.safety)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        if backend.step_socket is not None:
            daemon.run_stepped(backend.step_socket)
        else:
            daemon.run()
    finally:
        daemon.log_status(clock.monotonic(), force=True)
        backend.close()


if __name__ == "__main__":
    main()
