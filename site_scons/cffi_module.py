"""SCons helper: build a cffi API-mode extension module from a `*_build.py` file."""

import runpy
import sys

from SCons.Script import Action


def _emit_c(target, source, env):
    root = env.Dir("#").abspath  # the build files import the cdef reader (common.cffi_header) from the tree
    if root not in sys.path:
        sys.path.insert(0, root)
    ns = runpy.run_path(str(source[0]))
    ns["ffibuilder"].emit_c_code(str(target[0]))
    return 0


def add_cffi_builder(env) -> None:
    """Adds env.CffiModule(target_so_without_suffix, build_py, c_sources, extra_headers)."""

    def cffi_module(env, target: str, build_py: str, sources: list[str], headers: list[str] = ()):
        wrapper = env.Command(target + "_cffi.c", build_py, Action(_emit_c, "cffi: $TARGET"))
        env.Depends(wrapper, [*headers, "#common/cffi_header.py"])
        # cffi's generated wrapper includes Python.h and casts freely: not our code, so not -Wextra.
        wrap_env = env.Clone()
        wrap_env.Replace(CFLAGS=[f for f in env["CFLAGS"] if f not in ("-Wextra",)] + ["-Wno-unused-parameter"])
        wrap_obj = wrap_env.SharedObject(target + "_cffi.os", wrapper)
        objs = [env.SharedObject(s) for s in sources]
        return env.SharedLibrary(target, [wrap_obj] + objs)

    env.AddMethod(cffi_module, "CffiModule")
    env["PYTHON"] = sys.executable
