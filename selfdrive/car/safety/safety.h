// Public API of the safety layer: the last word on every frame roadpilot sends to a car.
//
// One safety state per process (like a panda's firmware). Time is always passed in, in microseconds of
// a monotonic clock, so the C never reads a clock and every test is deterministic. Every check fails
// closed: an unknown mode is silent, an unknown address is refused, a bad length or checksum is refused.
#pragma once

#include <stdbool.h>
#include <stdint.h>

// Mode ids. The Python IntEnum selfdrive.car.safety.SafetyMode is the declaration (numbered like
// opendbc's CarParams.SafetyModel); test_modes.py checks that these agree with it.
#define SAFETY_MODE_SILENT 0
#define SAFETY_MODE_TOYOTA 2
#define SAFETY_MODE_NO_OUTPUT 19
#define SAFETY_MODE_INVALID 65535  // safety_mode_at() past the end of the registry

// Verdicts of safety_rx/safety_tx: 0 means accepted; anything else is the rule that refused the frame.
#define SAFETY_OK 0
#define SAFETY_MODE 1               // silent / no_output: this mode never sends
#define SAFETY_RELAY 2              // the car's own copy of a message we send was seen: relay malfunction
#define SAFETY_ADDRESS 3            // address/bus not in the mode's table (or not a CAN id at all)
#define SAFETY_LENGTH 4             // wrong frame length
#define SAFETY_CHECKSUM 5           // checksum byte does not match the frame
#define SAFETY_PAYLOAD 6            // a field that must stay zero (braking request, second accel) is set
#define SAFETY_COUNTER 7            // message counter repeated, went backwards or jumped
#define SAFETY_NOT_ALLOWED 8        // actuation while controls are not allowed
#define SAFETY_TORQUE_NO_REQUEST 9  // steering torque without the steer request bit
#define SAFETY_MAX_TORQUE 10        // steering torque above the absolute limit
#define SAFETY_RATE 11              // steering torque changed faster than the per-frame limits
#define SAFETY_RT_RATE 12           // steering torque changed more than allowed in one real-time window
#define SAFETY_TORQUE_ERROR 13      // steering torque too far from what the EPS measures
#define SAFETY_DRIVER_OVERRIDE 14   // steering torque against a driver who is steering the other way
#define SAFETY_ACCEL_RANGE 15       // acceleration command outside the allowed range
#define SAFETY_REASON_COUNT 16

// safety_set_mode results
#define SAFETY_SET_OK 0
#define SAFETY_SET_UNKNOWN_MODE -1
#define SAFETY_SET_BAD_PARAM -2

typedef struct {
  uint32_t rx_total;
  uint32_t rx_refused[SAFETY_REASON_COUNT];  // frames ignored as invalid, by reason (LENGTH, CHECKSUM, RELAY, ADDRESS)
  uint32_t tx_total;
  uint32_t tx_allowed;
  uint32_t tx_blocked[SAFETY_REASON_COUNT];  // frames refused, by reason
} safety_counters_t;

// What the rx hook tracks from the car's own frames, in the units of the car's signals.
typedef struct {
  bool cruise_engaged;
  bool gas_pressed;
  bool brake_pressed;
  int32_t speed_ckph;      // vehicle speed, 0.01 km/h
  int32_t driver_torque;   // driver's steering torque, raw units
  int32_t eps_torque;      // EPS motor torque, scaled to command units
} safety_car_state_t;

// Selects a mode and resets all state (controls not allowed, relay ok, no heartbeat, counters zero).
// An unknown mode or a parameter the mode cannot honour leaves the layer in SAFETY_MODE_SILENT.
int safety_set_mode(uint16_t mode, uint32_t param);
uint16_t safety_get_mode(void);
bool safety_listen_only(void);

// The car's frames (rx) and the frames we want to send (tx). Returns SAFETY_OK or a reason code.
int safety_rx(int64_t addr, int64_t bus, const uint8_t *data, uint32_t len, uint64_t now_us);
int safety_tx(int64_t addr, int64_t bus, const uint8_t *data, uint32_t len, uint64_t now_us);

// controlsd's heartbeat; without one for more than 1 s, controls are not allowed.
void safety_heartbeat(uint64_t now_us);

bool safety_controls_allowed(void);
bool safety_relay_malfunction(void);
void safety_get_counters(safety_counters_t *out);
void safety_get_car_state(safety_car_state_t *out);

// The registry, for tests and status messages.
int safety_mode_count(void);
uint16_t safety_mode_at(int index);
const char *safety_mode_name(uint16_t mode);
const char *safety_reason_name(int reason);
