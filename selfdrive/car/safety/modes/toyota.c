// Toyota safety mode. The rules, in the order a frame meets them, are written out in
// selfdrive/car/safety/README.md; tests/safety_model.py is an independent Python copy of them.
// Loops over arrays are written `i != N` (see the README's "Mutation check").
#include <string.h>

#include "selfdrive/car/safety/modes/toyota.h"

// Steering limits, in STEER_TORQUE_CMD units (the published Toyota values; the real RAV4 drive in
// ../shared/data stays inside every one of them).
#define TOYOTA_MAX_TORQUE 1500
#define TOYOTA_RATE_UP 15            // per frame, away from zero
#define TOYOTA_RATE_DOWN 25          // per frame, towards zero
#define TOYOTA_RT_DELTA 450          // away from zero within one real-time window
#define TOYOTA_RT_WINDOW_US 250000U
#define TOYOTA_TORQUE_ERROR 350      // command in excess of the EPS's measured torque
#define TOYOTA_EPS_SAMPLES 6         // measured torque samples the error is judged against (~120 ms)
#define TOYOTA_DRIVER_ALLOWANCE 100  // driver torque against the command before the limit shrinks
#define TOYOTA_DRIVER_FACTOR 10      // limit shrinks by this per unit of driver torque beyond the allowance
#define TOYOTA_COUNTER_MAX_STEP 2    // one lost frame upstream is tolerated, a repeat or a jump is not
// Acceleration, in ACCEL_CMD units (mm/s^2).
#define TOYOTA_ACCEL_MIN (-3500)
#define TOYOTA_ACCEL_MAX 2000
// A car message not seen for this long means we no longer know the car's state.
#define TOYOTA_RX_TIMEOUT_US 250000U
#define TOYOTA_WHEEL_SPEED_OFFSET 6767  // WHEEL_SPEED_* raw offset: 67.67 km/h in 0.01 km/h

typedef enum { TX_STATIC, TX_STEER, TX_ACCEL } tx_kind_t;
typedef enum { RELAY_NEVER, RELAY_ALWAYS, RELAY_OP_LONG } relay_rule_t;

typedef struct {
  uint32_t addr;
  uint32_t len;
  bool checksum;
  bool op_long_only;    // only when we, not the stock DSU, do longitudinal control
  relay_rule_t relay;   // when the car's own copy of this address on bus 0 means the relay is not cutting it off
  tx_kind_t kind;
  uint8_t must_be_zero[8];
} toyota_tx_msg_t;

// Everything we may send, all on bus 0. Lengths from the DBC; 0x367 and 0x4D3 are not in it and come
// from the 2018 assistant's DSU/camera stand-in messages seen in the real drive.
static const toyota_tx_msg_t TX_MSGS[] = {
  {0x2E4, 5, true, false, RELAY_ALWAYS, TX_STEER, {0}},                                  // STEERING_LKA
  {0x343, 8, true, false, RELAY_OP_LONG, TX_ACCEL, {0, 0, 0, 0, 0, 0xFF, 0, 0}},         // ACC_CONTROL: ACCEL_CMD_ALT
  {0x283, 7, true, true, RELAY_ALWAYS, TX_STATIC, {0, 0, 0xFF, 0xFF, 0xFC, 0x02, 0}},    // PRE_COLLISION: no force
  {0x344, 8, true, true, RELAY_ALWAYS, TX_STATIC, {0xFF, 0xC0, 0x02, 0x68, 0x12, 0, 0, 0}},  // PRE_COLLISION_2
  {0x412, 8, false, false, RELAY_ALWAYS, TX_STATIC, {0}},                                 // LKAS_HUD
  {0x365, 7, false, true, RELAY_NEVER, TX_STATIC, {0}},                                   // DSU_CRUISE
  {0x366, 7, false, true, RELAY_NEVER, TX_STATIC, {0}},
  {0x367, 2, false, true, RELAY_NEVER, TX_STATIC, {0}},
  {0x411, 8, false, true, RELAY_NEVER, TX_STATIC, {0}},                                   // PCS_HUD
  {0x414, 8, false, true, RELAY_NEVER, TX_STATIC, {0}},                                   // AUTO_HIGH_BEAM
  {0x489, 8, false, true, RELAY_NEVER, TX_STATIC, {0}},                                   // RSA1
  {0x48A, 8, false, true, RELAY_NEVER, TX_STATIC, {0}},                                   // RSA2
  {0x48B, 8, false, true, RELAY_NEVER, TX_STATIC, {0}},                                   // RSA3
  {0x4CB, 8, false, true, RELAY_NEVER, TX_STATIC, {0}},
  {0x4D3, 8, false, true, RELAY_NEVER, TX_STATIC, {0}},
};
#define TX_LEN ((int)(sizeof(TX_MSGS) / sizeof(TX_MSGS[0])))

typedef enum { RX_PCM_CRUISE, RX_TORQUE_SENSOR, RX_WHEEL_SPEEDS, RX_BRAKE } rx_kind_t;
typedef enum { FOR_ALL, FOR_STD_BRAKE, FOR_ALT_BRAKE } rx_variant_t;

typedef struct {
  uint32_t addr;
  uint32_t len;
  bool checksum;
  rx_kind_t kind;
  rx_variant_t variant;
  uint32_t brake_byte;  // RX_BRAKE: the byte whose bit 5 is BRAKE_PRESSED
} toyota_rx_msg_t;

// The car's frames we track, all on bus 0; every active one must keep arriving.
static const toyota_rx_msg_t RX_MSGS[] = {
  {0x1D2, 8, true, RX_PCM_CRUISE, FOR_ALL, 0},
  {0x260, 8, true, RX_TORQUE_SENSOR, FOR_ALL, 0},
  {0x0AA, 8, false, RX_WHEEL_SPEEDS, FOR_ALL, 0},
  {0x226, 8, false, RX_BRAKE, FOR_STD_BRAKE, 4},
  {0x224, 8, false, RX_BRAKE, FOR_ALT_BRAKE, 0},
};
#define RX_LEN ((int)(sizeof(RX_MSGS) / sizeof(RX_MSGS[0])))

// Set by init from the param.
static bool op_long;
static bool alt_brake;
static int32_t eps_scale;

// Tracked from the car.
static bool rx_seen[RX_LEN];
static uint64_t rx_last_us[RX_LEN];
static bool cruise_prev;
static int32_t eps_samples[TOYOTA_EPS_SAMPLES];
static int eps_next;

// Our own steering commands.
static int32_t torque_last;
static int32_t rt_ref;
static uint64_t rt_start_us;
static bool counter_seen;
static uint32_t counter_last;

static void steer_reset(uint64_t now_us) {
  torque_last = 0;
  rt_ref = 0;
  rt_start_us = now_us;
}

static bool toyota_init(uint32_t param) {
  op_long = (param & TOYOTA_FLAG_STOCK_LONGITUDINAL) == 0U;
  alt_brake = (param & TOYOTA_FLAG_ALT_BRAKE) != 0U;
  eps_scale = (int32_t)(param & TOYOTA_PARAM_EPS_SCALE_MASK);
  memset(rx_seen, 0, sizeof(rx_seen));
  memset(rx_last_us, 0, sizeof(rx_last_us));
  cruise_prev = false;
  memset(eps_samples, 0, sizeof(eps_samples));
  eps_next = 0;
  steer_reset(0);
  counter_seen = false;
  counter_last = 0;
  uint32_t known = TOYOTA_PARAM_EPS_SCALE_MASK | TOYOTA_FLAG_ALT_BRAKE | TOYOTA_FLAG_STOCK_LONGITUDINAL;
  return (eps_scale != 0) && ((param & ~known) == 0U);
}

static bool checksum_ok(const safety_frame_t *f) {
  uint32_t sum = (f->addr >> 8) + (f->addr & 0xFFU) + f->len;
  for (uint32_t i = 0; (i + 1U) < f->len; i++) {
    sum += f->data[i];
  }
  return (sum & 0xFFU) == f->data[f->len - 1U];
}

static bool rx_active(const toyota_rx_msg_t *m) {
  return (m->variant == FOR_ALL) || ((m->variant == FOR_ALT_BRAKE) == alt_brake);
}

static bool rx_alive(uint64_t now_us) {
  for (int i = 0; i != RX_LEN; i++) {
    // A clock that went backwards wraps to a huge age: not alive.
    if (rx_active(&RX_MSGS[i]) && (!rx_seen[i] || ((now_us - rx_last_us[i]) > TOYOTA_RX_TIMEOUT_US))) {
      return false;
    }
  }
  return true;
}

static void check_rx_alive(uint64_t now_us) {
  if (!rx_alive(now_us)) {
    safety_disallow_controls();
  }
}

static bool tx_active(const toyota_tx_msg_t *m) { return op_long || !m->op_long_only; }

static bool relay_checked(uint32_t addr) {
  for (int i = 0; i != TX_LEN; i++) {
    const toyota_tx_msg_t *m = &TX_MSGS[i];
    if ((m->addr == addr) && tx_active(m) &&
        ((m->relay == RELAY_ALWAYS) || ((m->relay == RELAY_OP_LONG) && op_long))) {
      return true;
    }
  }
  return false;
}

static void on_pcm_cruise(const uint8_t *d, uint64_t now_us) {
  bool cruise = ((d[0] >> 5) & 1U) != 0U;
  safety_car.gas_pressed = ((d[0] >> 4) & 1U) == 0U;  // GAS_RELEASED
  safety_car.cruise_engaged = cruise;
  if (!cruise) {
    safety_disallow_controls();
  } else if (!cruise_prev && safety_heartbeat_fresh(now_us) && rx_alive(now_us) && !safety_car.brake_pressed &&
             !safety_relay_malfunction()) {
    safety_allow_controls();
    steer_reset(now_us);
  }
  cruise_prev = cruise;
}

static void on_torque_sensor(const uint8_t *d) {
  safety_car.driver_torque = safety_be_s16(d, 1);
  safety_car.eps_torque = (safety_be_s16(d, 5) * eps_scale) / 100;  // C division truncates towards zero
  eps_samples[eps_next] = safety_car.eps_torque;
  eps_next = (eps_next + 1) % TOYOTA_EPS_SAMPLES;
}

static int32_t be_u16(const uint8_t *d, int i) { return ((int32_t)d[i] << 8) | d[i + 1]; }

static void on_wheel_speeds(const uint8_t *d) {
  int32_t sum = be_u16(d, 0) + be_u16(d, 2) + be_u16(d, 4) + be_u16(d, 6);
  safety_car.speed_ckph = (sum / 4) - TOYOTA_WHEEL_SPEED_OFFSET;
}

static void on_brake(const toyota_rx_msg_t *m, const uint8_t *d) {
  safety_car.brake_pressed = ((d[m->brake_byte] >> 5) & 1U) != 0U;
  if (safety_car.brake_pressed) {
    safety_disallow_controls();
  }
}

static int toyota_rx(const safety_frame_t *f, uint64_t now_us) {
  check_rx_alive(now_us);
  if (f->bus != 0) {
    return SAFETY_OK;
  }
  if (relay_checked(f->addr)) {
    safety_latch_relay_malfunction();
    return SAFETY_RELAY;
  }
  for (int i = 0; i != RX_LEN; i++) {
    const toyota_rx_msg_t *m = &RX_MSGS[i];
    if ((m->addr != f->addr) || !rx_active(m)) {
      continue;
    }
    if (f->len != m->len) {
      return SAFETY_LENGTH;
    }
    if (m->checksum && !checksum_ok(f)) {
      return SAFETY_CHECKSUM;
    }
    rx_seen[i] = true;
    rx_last_us[i] = now_us;
    switch (m->kind) {
      case RX_PCM_CRUISE: on_pcm_cruise(f->data, now_us); break;
      case RX_TORQUE_SENSOR: on_torque_sensor(f->data); break;
      case RX_WHEEL_SPEEDS: on_wheel_speeds(f->data); break;
      default: on_brake(m, f->data); break;
    }
    return SAFETY_OK;
  }
  return SAFETY_OK;
}

static bool counter_ok(uint32_t counter) {
  uint32_t step = (counter - counter_last) & 0x3FU;
  bool ok = !counter_seen || ((step >= 1U) && (step <= TOYOTA_COUNTER_MAX_STEP));
  counter_seen = true;
  counter_last = counter;
  return ok;
}

// The torque limits for a frame that requests steering while controls are allowed.
static int torque_limits(int32_t torque, uint64_t now_us) {
  if ((torque > TOYOTA_MAX_TORQUE) || (torque < -TOYOTA_MAX_TORQUE)) {
    return SAFETY_MAX_TORQUE;
  }
  // Away from zero by at most RATE_UP, towards zero (and through it) by at most RATE_DOWN.
  int32_t hi = safety_min(safety_max(torque_last, 0) + TOYOTA_RATE_UP, torque_last + TOYOTA_RATE_DOWN);
  int32_t lo = safety_max(safety_min(torque_last, 0) - TOYOTA_RATE_UP, torque_last - TOYOTA_RATE_DOWN);
  if ((torque > hi) || (torque < lo)) {
    return SAFETY_RATE;
  }
  // The per-frame limits bound nothing if frames come faster: bound the change per window too.
  if ((now_us - rt_start_us) > TOYOTA_RT_WINDOW_US) {
    rt_ref = torque_last;
    rt_start_us = now_us;
  }
  if ((torque > (safety_max(rt_ref, 0) + TOYOTA_RT_DELTA)) || (torque < (safety_min(rt_ref, 0) - TOYOTA_RT_DELTA))) {
    return SAFETY_RT_RATE;
  }
  // Beyond what the EPS delivers plus the error, the command may only ramp down.
  int32_t meas_max = eps_samples[0];
  int32_t meas_min = eps_samples[0];
  for (int i = 1; i != TOYOTA_EPS_SAMPLES; i++) {
    meas_max = safety_max(meas_max, eps_samples[i]);
    meas_min = safety_min(meas_min, eps_samples[i]);
  }
  if ((torque > safety_max(safety_max(meas_max, 0) + TOYOTA_TORQUE_ERROR, torque_last - TOYOTA_RATE_DOWN)) ||
      (torque < safety_min(safety_min(meas_min, 0) - TOYOTA_TORQUE_ERROR, torque_last + TOYOTA_RATE_DOWN))) {
    return SAFETY_TORQUE_ERROR;
  }
  // A driver steering against the command shrinks the limit in that direction; ramping down stays allowed.
  int32_t drv = safety_car.driver_torque;
  int32_t pos_limit = safety_max(TOYOTA_MAX_TORQUE - (safety_max(-drv - TOYOTA_DRIVER_ALLOWANCE, 0) * TOYOTA_DRIVER_FACTOR), 0);
  int32_t neg_limit = safety_min(-TOYOTA_MAX_TORQUE + (safety_max(drv - TOYOTA_DRIVER_ALLOWANCE, 0) * TOYOTA_DRIVER_FACTOR), 0);
  if ((torque > safety_max(pos_limit, torque_last - TOYOTA_RATE_DOWN)) ||
      (torque < safety_min(neg_limit, torque_last + TOYOTA_RATE_DOWN))) {
    return SAFETY_DRIVER_OVERRIDE;
  }
  return SAFETY_OK;
}

static int steer_check(const uint8_t *d, uint64_t now_us) {
  bool request = (d[0] & 1U) != 0U;
  int32_t torque = safety_be_s16(d, 1);
  if (!counter_ok((d[0] >> 1) & 0x3FU)) {
    return SAFETY_COUNTER;
  }
  if (!request) {
    if (torque != 0) {
      return SAFETY_TORQUE_NO_REQUEST;
    }
    steer_reset(now_us);
    return SAFETY_OK;
  }
  if (!safety_controls_allowed()) {
    return SAFETY_NOT_ALLOWED;
  }
  int verdict = torque_limits(torque, now_us);
  if (verdict == SAFETY_OK) {
    torque_last = torque;
  }
  return verdict;
}

static int accel_check(const uint8_t *d) {
  int32_t accel = safety_be_s16(d, 0);
  bool cancel = (d[3] & 1U) != 0U;
  if (!op_long) {
    // The stock system drives: we may only ask it to cancel.
    return (cancel && (accel == 0)) ? SAFETY_OK : SAFETY_NOT_ALLOWED;
  }
  if ((accel < TOYOTA_ACCEL_MIN) || (accel > TOYOTA_ACCEL_MAX)) {
    return SAFETY_ACCEL_RANGE;
  }
  if ((accel != 0) && (!safety_controls_allowed() || safety_car.gas_pressed)) {
    return SAFETY_NOT_ALLOWED;
  }
  return SAFETY_OK;
}

static int check_tx_msg(const toyota_tx_msg_t *m, const safety_frame_t *f, uint64_t now_us) {
  if (f->len != m->len) {
    return SAFETY_LENGTH;
  }
  if (m->checksum && !checksum_ok(f)) {
    return SAFETY_CHECKSUM;
  }
  for (uint32_t i = 0; i != m->len; i++) {
    if ((f->data[i] & m->must_be_zero[i]) != 0U) {
      return SAFETY_PAYLOAD;
    }
  }
  switch (m->kind) {
    case TX_STEER: return steer_check(f->data, now_us);
    case TX_ACCEL: return accel_check(f->data);
    default: return SAFETY_OK;
  }
}

static int toyota_tx(const safety_frame_t *f, uint64_t now_us) {
  check_rx_alive(now_us);
  for (int i = 0; i != TX_LEN; i++) {
    const toyota_tx_msg_t *m = &TX_MSGS[i];
    if ((f->bus == 0) && (m->addr == f->addr) && tx_active(m)) {
      int verdict = check_tx_msg(m, f, now_us);
      if ((m->kind == TX_STEER) && (verdict != SAFETY_OK)) {
        steer_reset(now_us);  // after any refused steering frame the sender ramps up from zero again
      }
      return verdict;
    }
  }
  return SAFETY_ADDRESS;
}

const safety_hooks_t toyota_hooks = {
  .name = "toyota",
  .listen_only = false,
  .init = toyota_init,
  .rx = toyota_rx,
  .tx = toyota_tx,
};
