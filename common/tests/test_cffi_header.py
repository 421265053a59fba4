"""The cdef every cffi build reads off its C header."""

from cffi import FFI

from common.cffi_header import cdef_of

HEADER = """#ifndef X_H
#define X_H
#include <stdint.h>
#define X_COUNT 3u        // sizes an array below
#define X_ERR (-1000)     /* an error code */
#define X_MAGIC 0x43504956u
typedef struct {
  uint32_t per_reason[X_COUNT];  // a comment
} x_counts;
int x_get(x_counts *out);
#endif
"""


def test_integer_defines_become_constants_and_size_arrays_guards_and_includes_are_left_out():
    cdef = cdef_of(HEADER)
    assert "uint32_t per_reason[3];" in cdef
    assert {ln for ln in cdef.splitlines() if ln.startswith("#")} == {
        "#define X_COUNT ...", "#define X_ERR ...", "#define X_MAGIC ..."}
    assert "//" not in cdef and "/*" not in cdef and "X_H" not in cdef
    ffi = FFI()
    ffi.cdef(cdef)  # cffi parses it
    assert ffi.sizeof("x_counts") == 12
