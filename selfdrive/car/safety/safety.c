// roadpilot's safety layer: opendbc's panda safety code, included from the installed opendbc wheel
// (SConscript puts its folder on the include path; nothing of it is copied here), inside roadpilot's
// fail-closed rules. The rules, in the order a frame meets them, are in README.md.
//
// opendbc's safety.h is written to be compiled once, into one translation unit with its caller (the
// panda's firmware, or its test harness): it defines its globals and functions. This file is that
// translation unit, so it also reaches opendbc's file-static state (current_hooks, the mode's flags).
#include <string.h>

#include "selfdrive/car/safety/safety.h"

// Registers what opendbc compiles only into debug builds: the modes of platforms opendbc still ships
// (PSA, Subaru pre-global, Volkswagen PQ/MLB, Chrysler CUSW) and the param bits of alpha-longitudinal
// and SecOC variants. Without it those platforms' modes are unknown and their flags silently ignored.
// It also registers ALLOUTPUT, which rp_safety_set_mode refuses.
#define ALLOW_DEBUG

// opendbc reads the time through this (the panda's free-running microsecond timer). Here it is the
// monotonic time passed into the current call, truncated to 32 bits like the panda's counter: opendbc
// subtracts times as uint32_t, so the wrap every ~71 minutes is harmless.
static uint32_t rp_timer_us;
uint32_t microsecond_timer_get(void);
uint32_t microsecond_timer_get(void) { return rp_timer_us; }

// can.h first: opendbc's declarations use CANPacket_t without including it (its harness does the same)
#include "opendbc/safety/can.h"
#include "opendbc/safety/safety.h"

#define RP_HEARTBEAT_TIMEOUT_US 1000000U
#define RP_TICK_US 1000000U  // the panda calls safety_tick at 1 Hz
#define RP_CAN_ID_MAX 0x1FFFFFFF
#define RP_BUS_MAX 7         // CANPacket_t's bus field has 3 bits: a larger bus would alias a real one

static const char *const RP_REASON_NAMES[RP_REASON_COUNT] = {
  [RP_OK] = "OK", [RP_MODE] = "MODE", [RP_ADDRESS] = "ADDRESS", [RP_LENGTH] = "LENGTH", [RP_BUS] = "BUS",
  [RP_NOT_LISTED] = "NOT_LISTED", [RP_RELAY] = "RELAY", [RP_HEARTBEAT] = "HEARTBEAT",
  [RP_NOT_ALLOWED] = "NOT_ALLOWED", [RP_REFUSED] = "REFUSED", [RP_CHECKSUM] = "CHECKSUM", [RP_INVALID] = "INVALID",
  [RP_PAYLOAD] = "PAYLOAD", [RP_COUNTER] = "COUNTER",
};

static bool rp_heartbeat_seen;
static uint64_t rp_heartbeat_us;
static bool rp_clock_seen;
static uint64_t rp_last_tick_us;
static rp_counters_t rp_counters;

// ---- extra checks: what roadpilot's own Toyota mode checked and opendbc's toyota.h does not ----

typedef struct {
  uint16_t mode;
  uint32_t addr;
  int len;
  bool checksum;          // checked with the mode's own checksum function
  uint8_t zero_mask[8];   // bits that must stay zero
} rp_extra_tx_t;

static const rp_extra_tx_t RP_EXTRA_TX[] = {
  // STEERING_LKA
  {.mode = SAFETY_TOYOTA, .addr = 0x2E4, .len = 5, .checksum = true, .zero_mask = {0}},
  // ACC_CONTROL: ACCEL_CMD_ALT
  {.mode = SAFETY_TOYOTA, .addr = 0x343, .len = 8, .checksum = true, .zero_mask = {[5] = 0xFF}},
  // PRE_COLLISION
  {.mode = SAFETY_TOYOTA, .addr = 0x283, .len = 7, .checksum = true, .zero_mask = {0}},
  // PRE_COLLISION_2: no decel, no trigger
  {.mode = SAFETY_TOYOTA, .addr = 0x344, .len = 8, .checksum = true, .zero_mask = {0xFF, 0xC0, 0x02, 0x68, 0x12}},
};
#define RP_EXTRA_TX_LEN ((int)(sizeof(RP_EXTRA_TX) / sizeof(RP_EXTRA_TX[0])))
#define RP_TOYOTA_STEER_ADDR 0x2E4U
#define RP_TOYOTA_COUNTER_MAX_STEP 2U  // one frame lost upstream is tolerated; a repeat or a jump is not

static bool rp_toyota_counter_seen;
static uint32_t rp_toyota_counter_last;

static int rp_extra_tx(const CANPacket_t *msg) {
  // SecOC Toyotas send other lengths and layouts: opendbc's rules alone apply to them.
  if ((current_safety_mode != SAFETY_TOYOTA) || toyota_secoc) {
    return RP_OK;
  }
  int verdict = RP_OK;
  for (int i = 0; i != RP_EXTRA_TX_LEN; i++) {  // != : see README, "Mutation check"
    const rp_extra_tx_t *e = &RP_EXTRA_TX[i];
    if ((e->mode != current_safety_mode) || (e->addr != msg->addr) || (e->len != GET_LEN(msg)) || (msg->bus != 0U)) {
      continue;
    }
    if (e->checksum && (current_hooks->get_checksum(msg) != current_hooks->compute_checksum(msg))) {
      verdict = RP_CHECKSUM;
    }
    for (int b = 0; (verdict == RP_OK) && (b != e->len); b++) {
      if ((msg->data[b] & e->zero_mask[b]) != 0U) {
        verdict = RP_PAYLOAD;
      }
    }
  }
  if ((verdict == RP_OK) && (msg->addr == RP_TOYOTA_STEER_ADDR) && (GET_LEN(msg) == 5)) {
    uint32_t counter = (msg->data[0] >> 1) & 0x3FU;
    uint32_t step = (counter - rp_toyota_counter_last) & 0x3FU;
    if (rp_toyota_counter_seen && ((step == 0U) || (step > RP_TOYOTA_COUNTER_MAX_STEP))) {
      verdict = RP_COUNTER;
    }
    rp_toyota_counter_seen = true;
    rp_toyota_counter_last = counter;
    // opendbc lets a steer request with zero torque out while not engaged; the EPS still takes it as a
    // request to steer, so roadpilot refuses any request while controls are not allowed
    if ((verdict == RP_OK) && GET_BIT(msg, 0U) && !controls_allowed) {
      verdict = RP_NOT_ALLOWED;
    }
  }
  return verdict;
}

// ---- the layer ----

static bool rp_heartbeat_fresh(uint64_t now_us) {
  // A clock that went backwards wraps to a huge age: stale, which is the safe answer.
  return rp_heartbeat_seen && ((now_us - rp_heartbeat_us) <= RP_HEARTBEAT_TIMEOUT_US);
}

static bool rp_sends_nothing(void) {
  return (current_safety_mode == SAFETY_SILENT) || (current_safety_mode == SAFETY_NOOUTPUT);
}

int rp_safety_set_mode(uint16_t mode, uint32_t param) {
  rp_heartbeat_seen = false;
  rp_heartbeat_us = 0;
  rp_clock_seen = false;
  rp_last_tick_us = 0;
  rp_timer_us = 0;
  rp_toyota_counter_seen = false;
  rp_toyota_counter_last = 0;
  memset(&rp_counters, 0, sizeof(rp_counters));

  int result = RP_SET_OK;
  if (mode == SAFETY_ALLOUTPUT) {
    result = RP_SET_UNKNOWN_MODE;  // it allows every frame: never a mode of this layer
  } else if (param > 0xFFFFU) {
    result = RP_SET_BAD_PARAM;     // opendbc's params are 16 bits: a larger one would be truncated
  } else if (set_safety_hooks(mode, (uint16_t)param) != 0) {
    result = RP_SET_UNKNOWN_MODE;
  } else {
    // nothing more: opendbc's init took the mode and param
  }
  if (result != RP_SET_OK) {
    // set_safety_hooks leaves the previous mode's hooks in place when it refuses a mode: silence it.
    (void)set_safety_hooks(SAFETY_SILENT, 0U);
  }
  controls_allowed = false;
  return result;
}

uint16_t rp_safety_get_mode(void) { return current_safety_mode; }
uint16_t rp_safety_get_param(void) { return current_safety_param; }
bool rp_safety_listen_only(void) { return current_safety_mode == SAFETY_SILENT; }

void rp_safety_heartbeat(uint64_t now_us) {
  rp_heartbeat_seen = true;
  rp_heartbeat_us = now_us;
}

bool rp_safety_controls_allowed(void) { return controls_allowed; }
bool rp_safety_relay_malfunction(void) { return relay_malfunction; }
void rp_safety_get_counters(rp_counters_t *out) { *out = rp_counters; }

void rp_safety_get_car_state(rp_car_state_t *out) {
  *out = (rp_car_state_t){cruise_engaged_prev, gas_pressed, brake_pressed, vehicle_moving, vehicle_speed.values[0],
                          torque_driver.values[0], torque_meas.values[0]};
}

void rp_safety_test_set_controls_allowed(bool allowed) { controls_allowed = allowed; }

const char *rp_safety_reason_name(int reason) {
  return ((reason >= 0) && (reason < RP_REASON_COUNT)) ? RP_REASON_NAMES[reason] : "UNKNOWN";
}

// The time of this call: opendbc's timer, the panda's 1 Hz tick (rx message timeouts; the relay check
// waits for two ticks after a mode change) and the heartbeat rule.
static void rp_clock(uint64_t now_us) {
  rp_timer_us = (uint32_t)now_us;
  if (!rp_clock_seen) {
    rp_clock_seen = true;
    rp_last_tick_us = now_us;
  } else if ((now_us < rp_last_tick_us) || ((now_us - rp_last_tick_us) >= RP_TICK_US)) {
    rp_last_tick_us = now_us;
    safety_tick(&current_safety_config);
    if (safety_mode_cnt < UINT32_MAX) {
      safety_mode_cnt++;
    }
  } else {
    // between ticks
  }
  if (!rp_heartbeat_fresh(now_us)) {
    controls_allowed = false;
  }
}

// Shape checks shared by rx and tx, then the panda's packet.
static int rp_packet(CANPacket_t *msg, int64_t addr, int64_t bus, const uint8_t *data, uint32_t len) {
  if ((addr < 0) || (addr > RP_CAN_ID_MAX)) {
    return RP_ADDRESS;
  }
  if ((bus < 0) || (bus > RP_BUS_MAX)) {
    return RP_BUS;
  }
  int dlc = -1;
  for (int i = 0; i != (int)sizeof(dlc_to_len); i++) {
    if (dlc_to_len[i] == len) {
      dlc = i;
    }
  }
  if (dlc < 0) {
    return RP_LENGTH;
  }
  memset(msg, 0, sizeof(*msg));
  msg->fd = (len > 8U) ? 1U : 0U;  // NOMUT: 9..11 are not CAN FD lengths, so > 8 and > 9..11 are the same
  msg->bus = (unsigned char)bus;
  msg->data_len_code = (unsigned char)dlc;
  msg->extended = (addr >= 0x800) ? 1U : 0U;
  msg->addr = (unsigned int)addr;
  if (len > 0U) {
    memcpy(msg->data, data, len);
  }
  return RP_OK;
}

// opendbc's relay check, for an rx frame the wrapper drops before opendbc sees it.
static void rp_relay_check(const CANPacket_t *msg) {
  for (int i = 0; i < current_safety_config.tx_msgs_len; i++) {
    const CanMsg *m = &current_safety_config.tx_msgs[i];
    if (m->check_relay) {
      stock_ecu_check((m->addr == (int)msg->addr) && (m->bus == msg->bus));
    }
  }
}

// A tracked message (its address and bus are in the mode's rx table) at another length, or with a bad
// checksum, is dropped before opendbc sees it: the message then goes stale (opendbc's timeout ends
// controls) instead of one bad frame ending them at once. See README, "Deviations".
static int rp_rx_prefilter(const CANPacket_t *msg) {
  bool tracked = false;
  for (int i = 0; i < current_safety_config.rx_checks_len; i++) {
    const RxCheck *rc = &current_safety_config.rx_checks[i];
    for (int j = 0; (j != (int)MAX_ADDR_CHECK_MSGS) && (rc->msg[j].addr != 0); j++) {
      const CanMsgCheck *m = &rc->msg[j];
      if ((m->addr != (int)msg->addr) || (m->bus != msg->bus)) {
        continue;
      }
      tracked = true;
      if (m->len == GET_LEN(msg)) {
        bool checked = !m->ignore_checksum && (current_hooks->get_checksum != NULL) &&
                       (current_hooks->compute_checksum != NULL);
        return (checked && (current_hooks->get_checksum(msg) != current_hooks->compute_checksum(msg))) ?
               RP_CHECKSUM : RP_OK;
      }
    }
  }
  return tracked ? RP_LENGTH : RP_OK;
}

int rp_safety_rx(int64_t addr, int64_t bus, const uint8_t *data, uint32_t len, uint64_t now_us) {
  rp_counters.rx_total++;
  rp_clock(now_us);
  CANPacket_t msg;
  int verdict = rp_packet(&msg, addr, bus, data, len);
  if (verdict == RP_OK) {
    verdict = rp_rx_prefilter(&msg);
    if (verdict != RP_OK) {
      rp_relay_check(&msg);
    } else if (!safety_rx_hook(&msg)) {
      verdict = RP_INVALID;
    } else {
      // opendbc took it
    }
  }
  // a rising edge of cruise while controlsd is silent is not an engagement
  if (!rp_heartbeat_fresh(now_us)) {
    controls_allowed = false;
  }
  if (verdict != RP_OK) {
    rp_counters.rx_refused[verdict]++;
  }
  return verdict;
}

static bool rp_listed(const CANPacket_t *msg) {
  if (current_safety_mode == SAFETY_ELM327) {
    return true;  // opendbc: ELM327 has no table, its hook checks the diagnostic addresses
  }
  for (int i = 0; i < current_safety_config.tx_msgs_len; i++) {
    const CanMsg *m = &current_safety_config.tx_msgs[i];
    if ((m->addr == (int)msg->addr) && (m->bus == msg->bus) && (m->len == GET_LEN(msg))) {
      return true;
    }
  }
  return false;
}

int rp_safety_tx(int64_t addr, int64_t bus, const uint8_t *data, uint32_t len, uint64_t now_us) {
  rp_counters.tx_total++;
  rp_clock(now_us);
  CANPacket_t msg;
  int verdict = rp_packet(&msg, addr, bus, data, len);
  if ((verdict == RP_OK) && rp_sends_nothing()) {
    verdict = RP_MODE;
  }
  if ((verdict == RP_OK) && relay_malfunction) {
    verdict = RP_RELAY;
  }
  if ((verdict == RP_OK) && !rp_listed(&msg)) {
    verdict = RP_NOT_LISTED;
  }
  if (verdict == RP_OK) {
    // before opendbc's hook: a frame refused here never reaches it, so opendbc's rate limits stay
    // relative to what was really sent
    verdict = rp_extra_tx(&msg);
    if ((verdict == RP_NOT_ALLOWED) && !rp_heartbeat_fresh(now_us)) {
      verdict = RP_HEARTBEAT;
    }
  }
  if (verdict == RP_OK) {
    // The reason is the state the mode refused the frame in. ELM327 does not look at controls at all.
    bool controls_matter = current_safety_mode != SAFETY_ELM327;
    bool allowed_state = controls_allowed;
    if (!safety_tx_hook(&msg)) {
      if (!controls_matter || allowed_state) {
        verdict = RP_REFUSED;
      } else {
        verdict = rp_heartbeat_fresh(now_us) ? RP_NOT_ALLOWED : RP_HEARTBEAT;
      }
    }
  }
  if (verdict == RP_OK) {
    rp_counters.tx_allowed++;
  } else {
    rp_counters.tx_blocked[verdict]++;
  }
  return verdict;
}

bool rp_safety_rx_check_at(int index, int alternative, rp_msg_info_t *out) {
  if ((index < 0) || (index >= current_safety_config.rx_checks_len) || (alternative < 0) ||
      (alternative >= (int)MAX_ADDR_CHECK_MSGS)) {
    return false;
  }
  const CanMsgCheck *m = &current_safety_config.rx_checks[index].msg[alternative];
  if (m->addr == 0) {
    return false;
  }
  *out = (rp_msg_info_t){(uint32_t)m->addr, m->bus, (uint32_t)m->len, m->frequency, false,
                         !m->ignore_checksum && (current_hooks->compute_checksum != NULL), m->max_counter};
  return true;
}

bool rp_safety_tx_msg_at(int index, rp_msg_info_t *out) {
  if ((index < 0) || (index >= current_safety_config.tx_msgs_len)) {
    return false;
  }
  const CanMsg *m = &current_safety_config.tx_msgs[index];
  *out = (rp_msg_info_t){(uint32_t)m->addr, m->bus, (uint32_t)m->len, 0U, m->check_relay, false, 0U};
  return true;
}
