// The core: mode registry, heartbeat, controls-allowed and relay state, counters, and the frame
// shape checks every mode relies on. Modes live in modes/, one file each.
#include <string.h>

#include "selfdrive/car/safety/safety_core.h"
#include "selfdrive/car/safety/modes/no_output.h"
#include "selfdrive/car/safety/modes/silent.h"
#include "selfdrive/car/safety/modes/toyota.h"

#define HEARTBEAT_TIMEOUT_US 1000000U
#define CAN_ID_MAX 0x1FFFFFFF
#define CAN_DATA_MAX 8U

typedef struct {
  uint16_t id;
  const safety_hooks_t *hooks;
} safety_mode_entry_t;

static const safety_mode_entry_t REGISTRY[] = {
  {SAFETY_MODE_TOYOTA, &toyota_hooks},
  {SAFETY_MODE_NO_OUTPUT, &no_output_hooks},
  {SAFETY_MODE_SILENT, &silent_hooks},
};
#define REGISTRY_LEN ((int)(sizeof(REGISTRY) / sizeof(REGISTRY[0])))

static const char *const REASON_NAMES[SAFETY_REASON_COUNT] = {
  "OK", "MODE", "RELAY", "ADDRESS", "LENGTH", "CHECKSUM", "PAYLOAD", "COUNTER", "NOT_ALLOWED",
  "TORQUE_NO_REQUEST", "MAX_TORQUE", "RATE", "RT_RATE", "TORQUE_ERROR", "DRIVER_OVERRIDE", "ACCEL_RANGE",
};

safety_car_state_t safety_car;

static uint16_t current_mode = SAFETY_MODE_SILENT;
static const safety_hooks_t *hooks = &silent_hooks;
static bool controls_allowed;
static bool relay_malfunction;
static bool heartbeat_seen;
static uint64_t heartbeat_us;
static safety_counters_t counters;

static const safety_hooks_t *find_mode(uint16_t mode) {
  for (int i = 0; i != REGISTRY_LEN; i++) {  // != : see README, "Mutation check"
    if (REGISTRY[i].id == mode) {
      return REGISTRY[i].hooks;
    }
  }
  return NULL;
}

int safety_set_mode(uint16_t mode, uint32_t param) {
  controls_allowed = false;
  relay_malfunction = false;
  heartbeat_seen = false;
  heartbeat_us = 0;
  memset(&counters, 0, sizeof(counters));
  memset(&safety_car, 0, sizeof(safety_car));

  const safety_hooks_t *found = find_mode(mode);
  int result = SAFETY_SET_OK;
  if (found == NULL) {
    result = SAFETY_SET_UNKNOWN_MODE;
  } else if (!found->init(param)) {
    result = SAFETY_SET_BAD_PARAM;
  } else {
    current_mode = mode;
    hooks = found;
  }
  if (result != SAFETY_SET_OK) {
    current_mode = SAFETY_MODE_SILENT;
    hooks = &silent_hooks;
    (void)hooks->init(0);
  }
  return result;
}

uint16_t safety_get_mode(void) { return current_mode; }
bool safety_listen_only(void) { return hooks->listen_only; }

bool safety_heartbeat_fresh(uint64_t now_us) {
  // A clock that went backwards wraps to a huge age: stale, which is the safe answer.
  return heartbeat_seen && ((now_us - heartbeat_us) <= HEARTBEAT_TIMEOUT_US);
}

void safety_heartbeat(uint64_t now_us) {
  heartbeat_seen = true;
  heartbeat_us = now_us;
}

void safety_allow_controls(void) { controls_allowed = true; }
void safety_disallow_controls(void) { controls_allowed = false; }
bool safety_controls_allowed(void) { return controls_allowed; }
bool safety_relay_malfunction(void) { return relay_malfunction; }

void safety_latch_relay_malfunction(void) {
  relay_malfunction = true;
  controls_allowed = false;
}

static void check_heartbeat(uint64_t now_us) {
  if (!safety_heartbeat_fresh(now_us)) {
    controls_allowed = false;
  }
}

// Shape checks shared by rx and tx: a CAN id and a classic CAN payload.
static int frame_shape(int64_t addr, uint32_t len) {
  if ((addr < 0) || (addr > CAN_ID_MAX)) {
    return SAFETY_ADDRESS;
  }
  if (len > CAN_DATA_MAX) {
    return SAFETY_LENGTH;
  }
  return SAFETY_OK;
}

int safety_rx(int64_t addr, int64_t bus, const uint8_t *data, uint32_t len, uint64_t now_us) {
  counters.rx_total++;
  check_heartbeat(now_us);
  int verdict = frame_shape(addr, len);
  if (verdict == SAFETY_OK) {
    safety_frame_t f = {(uint32_t)addr, bus, len, data};
    verdict = hooks->rx(&f, now_us);
  }
  if (verdict != SAFETY_OK) {
    counters.rx_refused[verdict]++;
  }
  return verdict;
}

int safety_tx(int64_t addr, int64_t bus, const uint8_t *data, uint32_t len, uint64_t now_us) {
  counters.tx_total++;
  check_heartbeat(now_us);
  int verdict = frame_shape(addr, len);
  if ((verdict == SAFETY_OK) && relay_malfunction) {
    verdict = SAFETY_RELAY;
  }
  if (verdict == SAFETY_OK) {
    safety_frame_t f = {(uint32_t)addr, bus, len, data};
    verdict = hooks->tx(&f, now_us);
  }
  if (verdict == SAFETY_OK) {
    counters.tx_allowed++;
  } else {
    counters.tx_blocked[verdict]++;
  }
  return verdict;
}

void safety_get_counters(safety_counters_t *out) { *out = counters; }
void safety_get_car_state(safety_car_state_t *out) { *out = safety_car; }

int safety_mode_count(void) { return REGISTRY_LEN; }

uint16_t safety_mode_at(int index) {
  return ((index >= 0) && (index < REGISTRY_LEN)) ? REGISTRY[index].id : SAFETY_MODE_INVALID;
}

const char *safety_mode_name(uint16_t mode) {
  const safety_hooks_t *found = find_mode(mode);
  return (found != NULL) ? found->name : "unknown";
}

const char *safety_reason_name(int reason) {
  return ((reason >= 0) && (reason < SAFETY_REASON_COUNT)) ? REASON_NAMES[reason] : "UNKNOWN";
}
