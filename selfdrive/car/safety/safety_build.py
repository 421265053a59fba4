"""cffi API-mode definition of the safety layer. SCons compiles SOURCES itself (see SConscript);
tests/build_variant.py reuses SOURCES, OPENDBC_INCLUDE and ffibuilder to build coverage, sanitizer and
mutant copies."""

import os
from pathlib import Path

import opendbc
from cffi import FFI

from common.cffi_header import cdef_of

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
SOURCES = ["safety.c"]
# safety.c includes opendbc's safety C as "opendbc/safety/safety.h": the folder above the installed
# opendbc package goes on the include path. Nothing of it is copied into this repository.
OPENDBC_INCLUDE = os.path.dirname(os.path.dirname(os.path.abspath(opendbc.__file__)))
OPENDBC_SAFETY = Path(OPENDBC_INCLUDE) / "opendbc" / "safety"


ffibuilder = FFI()
ffibuilder.cdef(cdef_of((HERE / "safety.h").read_text()))
ffibuilder.set_source(
    "selfdrive.car.safety._safety",
    '#include "selfdrive/car/safety/safety.h"',
    include_dirs=[str(ROOT)],
)
