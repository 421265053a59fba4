"""Builds other copies of the safety module into a folder of their own, never touching the SCons build or
the installed opendbc wheel: with gcov instrumentation, with sanitizers, or with one file replaced (a
mutant). Load one by setting ROADPILOT_SAFETY_LIB to the path `build()` returns.

The module is one translation unit, safety.c, which includes opendbc's safety C. A build with overrides
compiles it against a private copy of opendbc's `safety/` headers with the replaced files written into the
copy; the wheel's own files are only ever read."""

import contextlib
import io
import runpy
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
SAFETY = ROOT / "selfdrive" / "car" / "safety"
SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")
_BUILD = runpy.run_path(str(SAFETY / "safety_build.py"))
OPENDBC_INCLUDE = Path(_BUILD["OPENDBC_INCLUDE"])
OPENDBC_SAFETY = Path(_BUILD["OPENDBC_SAFETY"])
# The SCons flags (SConstruct), less the optimisation level, which each variant picks.
BASE_CFLAGS = ["-std=c11", "-g", "-Wall", "-Wextra", "-fPIC", "-fvisibility=hidden",
               f"-I{sysconfig.get_paths()['include']}", f"-I{ROOT}"]
SANITIZE = ["-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"]
COVERAGE = ["-O0", "--coverage"]


def sources() -> list[str]:
    """Our C files, relative to the safety folder (the list safety_build.py keeps)."""
    return list(_BUILD["SOURCES"])


def opendbc_headers() -> list[str]:
    """opendbc's safety headers, relative to the include root ("opendbc/safety/lateral.h", ...)."""
    return sorted(str(p.relative_to(OPENDBC_INCLUDE)) for p in OPENDBC_SAFETY.glob("**/*.h"))


def compile_c(src: Path, obj: Path, cflags: list[str]) -> None:
    obj.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["gcc", *cflags, "-c", str(src), "-o", str(obj)], check=True, capture_output=True, text=True)


class VariantBuilder:
    """Compiles the cffi wrapper and the unmodified module once; each build() recompiles safety.c with
    `overrides` (keys: our sources, e.g. "safety.c", or opendbc headers, e.g. "opendbc/safety/lateral.h")."""

    def __init__(self, outdir: Path, cflags: list[str], ldflags: list[str] = (), werror: bool = True):
        self.outdir = Path(outdir)
        self.cflags = BASE_CFLAGS + list(cflags) + (["-Werror"] if werror else [])
        self.ldflags = list(ldflags)
        self.outdir.mkdir(parents=True, exist_ok=True)
        wrapper = self.outdir / "_safety_cffi.c"
        with contextlib.redirect_stdout(io.StringIO()):  # cffi prints "generating ..."
            _BUILD["ffibuilder"].emit_c_code(str(wrapper))
        # cffi's generated code is not ours: the same relaxed flags as site_scons/cffi_module.py
        wrap_flags = [f for f in self.cflags if f not in ("-Wextra", "-Werror")] + ["-Wno-unused-parameter"]
        compile_c(wrapper, self.outdir / "obj" / "_safety_cffi.o", wrap_flags)
        self.objects = {rel: self.outdir / "obj" / (rel.replace("/", "__") + ".o") for rel in sources()}
        for rel, obj in self.objects.items():
            compile_c(SAFETY / rel, obj, self.cflags + [f"-I{OPENDBC_INCLUDE}"])
        self.builds = 0

    def build(self, overrides: dict[str, str] | None = None) -> Path:
        """Links a module. Raises subprocess.CalledProcessError when a replacement does not compile."""
        self.builds += 1
        tag = self.outdir / f"build{self.builds}"
        tag.mkdir()
        objs = [str(o) for o in self.objects.values()]
        if overrides:
            include = tag / "include"
            shutil.copytree(OPENDBC_SAFETY, include / "opendbc" / "safety",
                            ignore=shutil.ignore_patterns("tests", "__pycache__", "*.py"))
            for rel, text in overrides.items():
                dest = include / rel if rel.startswith("opendbc/") else tag / "src" / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_text(text)
            objs = []
            for rel in sources():
                src = tag / "src" / rel if rel in overrides else SAFETY / rel
                obj = tag / "obj" / (rel.replace("/", "__") + ".o")
                compile_c(src, obj, self.cflags + [f"-I{include}"])  # the copy only, never the wheel
                objs.append(str(obj))
        module = tag / f"_safety{SUFFIX}"
        subprocess.run(["gcc", "-shared", "-o", str(module), str(self.outdir / "obj" / "_safety_cffi.o"), *objs,
                        *self.ldflags], check=True, capture_output=True, text=True)
        return module


def run_tests(module: Path, tests: list[str], extra_env: dict[str, str] | None = None, stop_first: bool = True,
              timeout: float = 600, extra_args: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Runs pytest on `tests` (paths relative to the repository) against `module`, in a subprocess."""
    import os
    env = {**os.environ, "ROADPILOT_SAFETY_LIB": str(module), **(extra_env or {})}
    # Failing examples found against a variant must not be replayed against the real build later.
    env.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(module.parent / ".hypothesis"))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *(["-x"] if stop_first else []), *extra_args,
           *tests]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
