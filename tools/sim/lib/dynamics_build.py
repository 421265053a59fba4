"""cffi API-mode definition of the vehicle dynamics C loop (built by SCons: see tools/sim/lib/SConscript).

The cdef is read from the header itself (common.cffi_header), so the struct layouts cannot drift apart."""

import os

from cffi import FFI

from common.cffi_header import cdef_of

HERE = os.path.dirname(os.path.abspath(__file__))

ffibuilder = FFI()
with open(os.path.join(HERE, "vehicle_dynamics.h")) as f:
    ffibuilder.cdef(cdef_of(f.read()))
# SCons compiles vehicle_dynamics.c itself and links it with the wrapper, so no sources are listed here.
ffibuilder.set_source("tools.sim.lib._dynamics", '#include "tools/sim/lib/vehicle_dynamics.h"')
