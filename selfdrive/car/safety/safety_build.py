"""cffi API-mode definition of the safety layer. SCons compiles SOURCES itself (see SConscript);
tests/build_variant.py reuses SOURCES and ffibuilder to build coverage, sanitizer and mutant copies."""

import re
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
# The same set SConscript globs: every .c here and in modes/ except cffi's generated wrapper.
SOURCES = sorted(str(p.relative_to(HERE)) for p in [*HERE.glob("*.c"), *HERE.glob("modes/*.c")]
                 if not p.name.endswith("_cffi.c"))


def _constants(header: str) -> str:
    # Every integer #define of the public header, so the cdef cannot drift from it.
    names = re.findall(r"^#define (SAFETY_\w+|TOYOTA_\w+) ", header, re.M)
    return "\n".join(f"#define {n} ..." for n in names)


CDEF = """
typedef struct {
  uint32_t rx_total;
  uint32_t rx_refused[%(n)d];
  uint32_t tx_total;
  uint32_t tx_allowed;
  uint32_t tx_blocked[%(n)d];
} safety_counters_t;

typedef struct {
  bool cruise_engaged;
  bool gas_pressed;
  bool brake_pressed;
  int32_t speed_ckph;
  int32_t driver_torque;
  int32_t eps_torque;
} safety_car_state_t;

int safety_set_mode(uint16_t mode, uint32_t param);
uint16_t safety_get_mode(void);
bool safety_listen_only(void);
int safety_rx(int64_t addr, int64_t bus, const uint8_t *data, uint32_t len, uint64_t now_us);
int safety_tx(int64_t addr, int64_t bus, const uint8_t *data, uint32_t len, uint64_t now_us);
void safety_heartbeat(uint64_t now_us);
bool safety_controls_allowed(void);
bool safety_relay_malfunction(void);
void safety_get_counters(safety_counters_t *out);
void safety_get_car_state(safety_car_state_t *out);
int safety_mode_count(void);
uint16_t safety_mode_at(int index);
const char *safety_mode_name(uint16_t mode);
const char *safety_reason_name(int reason);
"""

_public = (HERE / "safety.h").read_text() + (HERE / "modes" / "toyota.h").read_text()
_reason_count = int(re.search(r"^#define SAFETY_REASON_COUNT (\d+)", _public, re.M).group(1))

ffibuilder = FFI()
ffibuilder.cdef(CDEF % {"n": _reason_count} + _constants(_public))
ffibuilder.set_source(
    "selfdrive.car.safety._safety",
    '#include "selfdrive/car/safety/safety.h"\n#include "selfdrive/car/safety/modes/toyota.h"',
    include_dirs=[str(ROOT)],
)
