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


def cdef_of(header: str) -> str:
    """The cdef, read from the public header itself, so the two cannot drift: its declarations without the
    comments and preprocessor lines, every #define a constant cffi takes from the compiled C, and the reason
    count written out where it sizes an array (a cdef cannot use a macro there)."""
    n = re.search(r"^#define RP_REASON_COUNT (\d+)", header, re.M).group(1)
    text = re.sub(r"//[^\n]*", "", header).replace("[RP_REASON_COUNT]", f"[{n}]")
    text = re.sub(r"^#define (RP_\w+) .*$", r"#define \1 ...", text, flags=re.M)
    return "\n".join(ln for ln in text.splitlines() if not ln.startswith(("#pragma", "#include")))


ffibuilder = FFI()
ffibuilder.cdef(cdef_of((HERE / "safety.h").read_text()))
ffibuilder.set_source(
    "selfdrive.car.safety._safety",
    '#include "selfdrive/car/safety/safety.h"',
    include_dirs=[str(ROOT)],
)
