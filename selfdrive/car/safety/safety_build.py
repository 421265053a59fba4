"""cffi API-mode definition of the safety layer. SCons compiles SOURCES itself (see SConscript);
tests/build_variant.py reuses SOURCES, OPENDBC_INCLUDE and ffibuilder to build coverage, sanitizer and
mutant copies."""

import os
import re
from pathlib import Path

import opendbc
from cffi import FFI

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
SOURCES = ["safety.c"]
# safety.c includes opendbc's safety C as "opendbc/safety/safety.h": the folder above the installed
# opendbc package goes on the include path. Nothing of it is copied into this repository.
OPENDBC_INCLUDE = os.path.dirname(os.path.dirname(os.path.abspath(opendbc.__file__)))
OPENDBC_SAFETY = Path(OPENDBC_INCLUDE) / "opendbc" / "safety"


def _constants(header: str) -> str:
    # Every integer #define of the public header, so the cdef cannot drift from it.
    names = re.findall(r"^#define (RP_\w+) ", header, re.M)
    return "\n".join(f"#define {n} ..." for n in names)


CDEF = """
typedef struct {
  uint32_t rx_total;
  uint32_t rx_refused[%(n)d];
  uint32_t tx_total;
  uint32_t tx_allowed;
  uint32_t tx_blocked[%(n)d];
} rp_counters_t;

typedef struct {
  uint32_t addr;
  uint32_t bus;
  uint32_t len;
  uint32_t frequency;
  bool check_relay;
  bool checksum;
  uint32_t max_counter;
} rp_msg_info_t;

typedef struct {
  bool cruise_engaged;
  bool gas_pressed;
  bool brake_pressed;
  bool vehicle_moving;
  int32_t speed_mm_s;
  int32_t driver_torque;
  int32_t eps_torque;
} rp_car_state_t;

int rp_safety_set_mode(uint16_t mode, uint32_t param);
uint16_t rp_safety_get_mode(void);
uint16_t rp_safety_get_param(void);
bool rp_safety_listen_only(void);
int rp_safety_rx(int64_t addr, int64_t bus, const uint8_t *data, uint32_t len, uint64_t now_us);
int rp_safety_tx(int64_t addr, int64_t bus, const uint8_t *data, uint32_t len, uint64_t now_us);
void rp_safety_heartbeat(uint64_t now_us);
bool rp_safety_controls_allowed(void);
bool rp_safety_relay_malfunction(void);
void rp_safety_get_counters(rp_counters_t *out);
void rp_safety_get_car_state(rp_car_state_t *out);
const char *rp_safety_reason_name(int reason);
bool rp_safety_rx_check_at(int index, int alternative, rp_msg_info_t *out);
bool rp_safety_tx_msg_at(int index, rp_msg_info_t *out);
void rp_safety_test_set_controls_allowed(bool allowed);
"""

_public = (HERE / "safety.h").read_text()
_reason_count = int(re.search(r"^#define RP_REASON_COUNT (\d+)", _public, re.M).group(1))

ffibuilder = FFI()
ffibuilder.cdef(CDEF % {"n": _reason_count} + _constants(_public))
ffibuilder.set_source(
    "selfdrive.car.safety._safety",
    '#include "selfdrive/car/safety/safety.h"',
    include_dirs=[str(ROOT)],
)
