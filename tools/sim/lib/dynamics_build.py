"""cffi API-mode definition of the vehicle dynamics C loop (built by SCons: see tools/sim/lib/SConscript).

The cdef is the header itself minus preprocessor lines, so the struct layouts cannot drift apart."""

import os
import re

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

with open(os.path.join(HERE, "vehicle_dynamics.h")) as f:
    _header = f.read()
_cdef = re.sub(r"/\*.*?\*/", "", _header, flags=re.S)
_cdef = "\n".join(line for line in _cdef.splitlines() if not line.lstrip().startswith("#"))

ffibuilder = FFI()
ffibuilder.cdef(_cdef + "\n#define VD_OK ...\n#define VD_E_DT ...\n")
# SCons compiles vehicle_dynamics.c itself and links it with the wrapper, so no sources are listed here.
ffibuilder.set_source("tools.sim.lib._dynamics", '#include "tools/sim/lib/vehicle_dynamics.h"')
