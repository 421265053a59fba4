// What a safety mode may use from the core: the frame, its hooks struct and the shared state.
#pragma once

#include "selfdrive/car/safety/safety.h"

typedef struct {
  uint32_t addr;
  int64_t bus;
  uint32_t len;  // 0..8, checked by the core before a hook sees the frame
  const uint8_t *data;
} safety_frame_t;

typedef struct {
  const char *name;
  bool listen_only;                          // the adapter may stay silent on the bus (no ACKs)
  bool (*init)(uint32_t param);              // false: the param asks for something the mode cannot do
  int (*rx)(const safety_frame_t *f, uint64_t now_us);
  int (*tx)(const safety_frame_t *f, uint64_t now_us);
} safety_hooks_t;

// Tracked car state, written by the active mode's rx hook.
extern safety_car_state_t safety_car;

bool safety_heartbeat_fresh(uint64_t now_us);
void safety_allow_controls(void);
void safety_disallow_controls(void);
void safety_latch_relay_malfunction(void);

static inline int32_t safety_be_s16(const uint8_t *d, int i) {
  return (int32_t)(int16_t)(uint16_t)(((uint16_t)d[i] << 8) | d[i + 1]);
}

static inline int32_t safety_max(int32_t a, int32_t b) {
  return (a > b) ? a : b;  // NOMUT: on a tie both branches give the same value
}

static inline int32_t safety_min(int32_t a, int32_t b) {
  return (a < b) ? a : b;  // NOMUT: on a tie both branches give the same value
}
