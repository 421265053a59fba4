"""cffi API-mode definition of the VisionIPC C part (built by SCons: see cereal/visionipc/SConscript)."""

import os

from cffi import FFI

from common.cffi_header import cdef_of

HERE = os.path.dirname(os.path.abspath(__file__))

ffibuilder = FFI()
with open(os.path.join(HERE, "visionipc.h")) as f:
    ffibuilder.cdef(cdef_of(f.read()))

# SCons compiles visionipc.c itself and links it with the wrapper, so no sources are listed here.
ffibuilder.set_source("cereal.visionipc._visionipc", '#include "cereal/visionipc/visionipc.h"')
