"""The cffi cdef of a C header, read from the header itself, so the Python side of a C part cannot drift from its C
side: every cffi build (the safety layer, VisionIPC, the simulator's vehicle dynamics) declares its C this way."""

import re

_DEFINE = re.compile(r"^\s*#\s*define\s+(\w+)\s+\(?\s*(-?(?:0x[0-9a-fA-F]+|\d+))[uUlL]*\s*\)?\s*$")


def cdef_of(header: str) -> str:
    """`header`'s declarations without comments and preprocessor lines; each integer #define becomes a constant that
    cffi takes from the compiled C (`#define NAME ...`), and an array sized by one of them gets its number (a cdef
    cannot use a macro there). Other #defines (include guards) are left out."""
    text = re.sub(r"/\*.*?\*/", "", header, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    values = {m.group(1): int(m.group(2), 0) for m in map(_DEFINE.match, text.splitlines()) if m}
    for name, value in values.items():
        text = re.sub(rf"\[\s*{name}\s*\]", f"[{value}]", text)
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    return "\n".join([*lines, *(f"#define {name} ..." for name in values)])
