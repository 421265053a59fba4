"""An independent Python model of the safety rules in ../README.md, written from that text and not
from the C. The tests feed the same events to the C and to this model and require the same verdicts,
so a C bug has to be repeated here, in another language and shape, to go unnoticed."""

from dataclasses import dataclass, field

HEARTBEAT_TIMEOUT_US = 1_000_000
RX_TIMEOUT_US = 250_000
RT_WINDOW_US = 250_000
MAX_TORQUE = 1500
RATE_UP = 15
RATE_DOWN = 25
RT_DELTA = 450
TORQUE_ERROR = 350
EPS_SAMPLES = 6
DRIVER_ALLOWANCE = 100
DRIVER_FACTOR = 10
ACCEL_MIN = -3500
ACCEL_MAX = 2000
COUNTER_STEPS = (1, 2)

ALT_BRAKE = 0x100
STOCK_LONG = 0x200

# address: (length, has checksum, only when we do longitudinal, relay rule, bytes that must be zero)
TX_TABLE = {
    0x2E4: (5, True, False, "always", b""),
    0x343: (8, True, False, "op_long", bytes([0, 0, 0, 0, 0, 0xFF, 0, 0])),
    0x283: (7, True, True, "always", bytes([0, 0, 0xFF, 0xFF, 0xFC, 0x02, 0])),
    0x344: (8, True, True, "always", bytes([0xFF, 0xC0, 0x02, 0x68, 0x12, 0, 0, 0])),
    0x412: (8, False, False, "always", b""),
    **{a: (n, False, True, "never", b"") for a, n in [(0x365, 7), (0x366, 7), (0x367, 2), (0x411, 8), (0x414, 8),
                                                     (0x489, 8), (0x48A, 8), (0x48B, 8), (0x4CB, 8), (0x4D3, 8)]},
}


def toyota_checksum(addr: int, data: bytes) -> int:
    return (addr // 256 + addr % 256 + len(data) + sum(data[:-1])) % 256


def with_checksum(addr: int, data: bytes) -> bytes:
    return data[:-1] + bytes([toyota_checksum(addr, data)])


def s16(data: bytes, i: int) -> int:
    return int.from_bytes(data[i:i + 2], "big", signed=True)


def trunc_div(a: int, b: int) -> int:
    q = abs(a) // b
    return q if a >= 0 else -q


@dataclass
class ToyotaModel:
    param: int
    controls_allowed: bool = False
    relay: bool = False
    heartbeat: int | None = None
    last_seen: dict = field(default_factory=dict)
    cruise_prev: bool = False
    gas: bool = False
    brake: bool = False
    driver: int = 0
    eps: list = field(default_factory=lambda: [0] * EPS_SAMPLES)
    last_torque: int = 0
    rt_ref: int = 0
    rt_start: int = 0
    prev_counter: int | None = None

    def __post_init__(self):
        self.op_long = not (self.param & STOCK_LONG)
        self.brake_addr = 0x224 if self.param & ALT_BRAKE else 0x226
        self.tracked = {0x1D2: True, 0x260: True, 0xAA: False, self.brake_addr: False}  # address: has checksum
        self.scale = self.param & 0xFF

    # --- shared state checks ---
    def _heartbeat_ok(self, now: int) -> bool:
        return self.heartbeat is not None and 0 <= now - self.heartbeat <= HEARTBEAT_TIMEOUT_US

    def _all_alive(self, now: int) -> bool:
        return all(a in self.last_seen and 0 <= now - self.last_seen[a] <= RX_TIMEOUT_US for a in self.tracked)

    def _shape(self, addr: int, data: bytes, now: int) -> str:
        # Every call checks the heartbeat; only a well-shaped frame reaches the mode and its staleness check.
        if not self._heartbeat_ok(now):
            self.controls_allowed = False
        if not 0 <= addr <= 0x1FFFFFFF:
            return "ADDRESS"
        return "LENGTH" if len(data) > 8 else "OK"

    def _stale_check(self, now: int) -> None:
        if not self._all_alive(now):
            self.controls_allowed = False

    def _active(self, addr: int) -> bool:
        return addr in TX_TABLE and (self.op_long or not TX_TABLE[addr][2])

    def _reset_steer(self, now: int) -> None:
        self.last_torque, self.rt_ref, self.rt_start = 0, 0, now

    def do_heartbeat(self, now: int) -> None:
        self.heartbeat = now

    # --- rx ---
    def rx(self, addr: int, bus: int, data: bytes, now: int) -> str:
        if (shape := self._shape(addr, data, now)) != "OK":
            return shape
        self._stale_check(now)
        if bus != 0:
            return "OK"
        if self._active(addr) and (TX_TABLE[addr][3] == "always" or (TX_TABLE[addr][3] == "op_long" and self.op_long)):
            self.relay = True
            self.controls_allowed = False
            return "RELAY"
        if addr not in self.tracked:
            return "OK"
        if len(data) != 8:
            return "LENGTH"
        if self.tracked[addr] and toyota_checksum(addr, data) != data[-1]:
            return "CHECKSUM"
        self.last_seen[addr] = now
        if addr == 0x1D2:
            cruise = bool(data[0] & 0x20)
            self.gas = not data[0] & 0x10
            if not cruise:
                self.controls_allowed = False
            elif not self.cruise_prev and self._heartbeat_ok(now) and self._all_alive(now) and not self.brake \
                    and not self.relay:
                self.controls_allowed = True
                self._reset_steer(now)
            self.cruise_prev = cruise
        elif addr == 0x260:
            self.driver = s16(data, 1)
            self.eps = self.eps[1:] + [trunc_div(s16(data, 5) * self.scale, 100)]
        elif addr == self.brake_addr:
            self.brake = bool(data[4 if addr == 0x226 else 0] & 0x20)
            if self.brake:
                self.controls_allowed = False
        return "OK"

    # --- tx ---
    def tx(self, addr: int, bus: int, data: bytes, now: int) -> str:
        if (shape := self._shape(addr, data, now)) != "OK":
            return shape
        if self.relay:
            return "RELAY"
        self._stale_check(now)
        if bus != 0 or not self._active(addr):
            return "ADDRESS"
        verdict = self._tx_checked(addr, data, now)
        if addr == 0x2E4 and verdict != "OK":
            self._reset_steer(now)
        return verdict

    def _tx_checked(self, addr: int, data: bytes, now: int) -> str:
        length, checksum, _, _, zeros = TX_TABLE[addr]
        if len(data) != length:
            return "LENGTH"
        if checksum and toyota_checksum(addr, data) != data[-1]:
            return "CHECKSUM"
        if any(b & z for b, z in zip(data, zeros, strict=False)):
            return "PAYLOAD"
        if addr == 0x2E4:
            return self._steer(data, now)
        if addr == 0x343:
            return self._accel(data)
        return "OK"

    def _steer(self, data: bytes, now: int) -> str:
        counter, request, torque = (data[0] >> 1) & 0x3F, data[0] & 1, s16(data, 1)
        prev, self.prev_counter = self.prev_counter, counter
        if prev is not None and (counter - prev) % 64 not in COUNTER_STEPS:
            return "COUNTER"
        if not request:
            if torque:
                return "TORQUE_NO_REQUEST"
            self._reset_steer(now)
            return "OK"
        if not self.controls_allowed:
            return "NOT_ALLOWED"
        verdict = self.torque_verdict(torque, now)
        if verdict == "OK":
            self.last_torque = torque
        return verdict

    def torque_verdict(self, t: int, now: int) -> str:
        last = self.last_torque
        if abs(t) > MAX_TORQUE:
            return "MAX_TORQUE"
        if last >= 0:
            highest, lowest = last + RATE_UP, max(last - RATE_DOWN, -RATE_UP)
        else:
            highest, lowest = min(last + RATE_DOWN, RATE_UP), last - RATE_UP
        if not lowest <= t <= highest:
            return "RATE"
        if now - self.rt_start > RT_WINDOW_US or now < self.rt_start:
            self.rt_ref, self.rt_start = last, now
        if not min(self.rt_ref, 0) - RT_DELTA <= t <= max(self.rt_ref, 0) + RT_DELTA:
            return "RT_RATE"
        if t > max(max(self.eps + [0]) + TORQUE_ERROR, last - RATE_DOWN):
            return "TORQUE_ERROR"
        if t < min(min(self.eps + [0]) - TORQUE_ERROR, last + RATE_DOWN):
            return "TORQUE_ERROR"
        against_pos = max(-self.driver - DRIVER_ALLOWANCE, 0)  # driver steering negative
        against_neg = max(self.driver - DRIVER_ALLOWANCE, 0)
        if t > max(max(MAX_TORQUE - against_pos * DRIVER_FACTOR, 0), last - RATE_DOWN):
            return "DRIVER_OVERRIDE"
        if t < min(min(-MAX_TORQUE + against_neg * DRIVER_FACTOR, 0), last + RATE_DOWN):
            return "DRIVER_OVERRIDE"
        return "OK"

    def _accel(self, data: bytes) -> str:
        accel, cancel = s16(data, 0), data[3] & 1
        if not self.op_long:
            return "OK" if cancel and accel == 0 else "NOT_ALLOWED"
        if not ACCEL_MIN <= accel <= ACCEL_MAX:
            return "ACCEL_RANGE"
        if accel and not (self.controls_allowed and not self.gas):
            return "NOT_ALLOWED"
        return "OK"
