// Public API of roadpilot's safety layer: opendbc's panda safety code (the C in the installed opendbc
// wheel, every brand) inside roadpilot's fail-closed rules. See README.md.
//
// One safety state per process, like a panda's firmware. Time is always passed in, in microseconds of
// a monotonic clock, so nothing here reads a clock and every test is deterministic.
#pragma once

#include <stdbool.h>
#include <stdint.h>

// Verdicts of rp_safety_rx / rp_safety_tx: 0 accepts the frame; anything else is the rule that refused it.
#define RP_OK 0
#define RP_MODE 1          // silent / no_output: this mode never sends
#define RP_ADDRESS 2       // not a CAN id (0..0x1FFFFFFF)
#define RP_LENGTH 3        // not a CAN / CAN FD length; rx: a tracked message at another length than its table's
#define RP_BUS 4           // not a bus a panda has (0..7)
#define RP_NOT_LISTED 5    // tx: address, bus and length are not in the mode's tx table
#define RP_RELAY 6         // the car's own copy of a message we send was seen: relay malfunction (latched)
#define RP_HEARTBEAT 7     // refused by the mode while controls are off because controlsd's heartbeat is stale
#define RP_NOT_ALLOWED 8   // refused by the mode while controls are not allowed (not engaged)
#define RP_REFUSED 9       // refused by the mode while controls are allowed: a limit (torque, rate, angle, accel)
#define RP_CHECKSUM 10     // a tracked rx message or an extra-checked tx message with a bad checksum
#define RP_INVALID 11      // rx: opendbc's checks of a tracked message (counter, quality flag) failed
#define RP_PAYLOAD 12      // tx: an extra check: a field that must stay zero is set
#define RP_COUNTER 13      // tx: an extra check: the message counter repeated or jumped
#define RP_REASON_COUNT 14

// rp_safety_set_mode results
#define RP_SET_OK 0
#define RP_SET_UNKNOWN_MODE -1
#define RP_SET_BAD_PARAM -2

typedef struct {
  uint32_t rx_total;
  uint32_t rx_refused[RP_REASON_COUNT];  // frames from the car judged invalid or ignored, by reason
  uint32_t tx_total;
  uint32_t tx_allowed;
  uint32_t tx_blocked[RP_REASON_COUNT];  // frames refused, by reason
} rp_counters_t;

// One entry of the active mode's tables, for tests and status.
typedef struct {
  uint32_t addr;
  uint32_t bus;
  uint32_t len;
  uint32_t frequency;  // rx: Hz the message is expected at (0 for tx)
  bool check_relay;    // tx: seeing the car's own copy on this bus latches a relay malfunction
  bool checksum;       // rx: its checksum is checked
  uint32_t max_counter;  // rx: its counter is checked up to this value (0: no counter)
} rp_msg_info_t;

// What opendbc's rx hooks tracked from the car's frames, in opendbc's units.
typedef struct {
  bool cruise_engaged;
  bool gas_pressed;
  bool brake_pressed;
  bool vehicle_moving;
  int32_t speed_mm_s;      // the latest vehicle speed sample, mm/s
  int32_t driver_torque;   // the latest driver torque sample, the brand's raw units
  int32_t eps_torque;      // the latest EPS torque sample, the brand's command units
} rp_car_state_t;

// Selects a mode (opendbc's CarParams.SafetyModel number) and its param, resetting all state: controls
// not allowed, relay ok, no heartbeat, counters zero. An unknown mode, ALLOUTPUT or a param opendbc cannot
// take leaves the layer in SILENT.
int rp_safety_set_mode(uint16_t mode, uint32_t param);
uint16_t rp_safety_get_mode(void);
uint16_t rp_safety_get_param(void);
bool rp_safety_listen_only(void);

// The car's frames (rx) and the frames we want to send (tx). Returns RP_OK or a reason.
int rp_safety_rx(int64_t addr, int64_t bus, const uint8_t *data, uint32_t len, uint64_t now_us);
int rp_safety_tx(int64_t addr, int64_t bus, const uint8_t *data, uint32_t len, uint64_t now_us);

// controlsd's heartbeat; without one for more than 1 s, controls are not allowed.
void rp_safety_heartbeat(uint64_t now_us);

bool rp_safety_controls_allowed(void);
bool rp_safety_relay_malfunction(void);
void rp_safety_get_counters(rp_counters_t *out);
void rp_safety_get_car_state(rp_car_state_t *out);
const char *rp_safety_reason_name(int reason);

// The active mode's tables: index past the end returns false.
bool rp_safety_rx_check_at(int index, int alternative, rp_msg_info_t *out);
bool rp_safety_tx_msg_at(int index, rp_msg_info_t *out);

// Tests only: opendbc's own harness has the same setter, for brands whose engagement frames are hard
// to build. The heartbeat rule still applies at the next rx/tx call.
void rp_safety_test_set_controls_allowed(bool allowed);
