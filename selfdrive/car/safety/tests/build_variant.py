"""Builds other copies of the safety module into a folder of their own, never touching the SCons build:
with gcov instrumentation, with sanitizers, or with one source file replaced (a mutant). Load one by
setting ROADPILOT_SAFETY_LIB to the path `build()` returns."""

import contextlib
import io
import runpy
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
SAFETY = ROOT / "selfdrive" / "car" / "safety"
SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")
# The SCons flags (SConstruct), less the optimisation level, which each variant picks.
BASE_CFLAGS = ["-std=c11", "-g", "-Wall", "-Wextra", "-fPIC", "-fvisibility=hidden",
               f"-I{sysconfig.get_paths()['include']}", f"-I{ROOT}"]
SANITIZE = ["-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"]
COVERAGE = ["-O0", "--coverage"]


def sources() -> list[str]:
    """The C files of the module, relative to the safety folder (the list safety_build.py keeps)."""
    return list(runpy.run_path(str(SAFETY / "safety_build.py"))["SOURCES"])


def compile_c(src: Path, obj: Path, cflags: list[str]) -> None:
    obj.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["gcc", *cflags, "-c", str(src), "-o", str(obj)], check=True, capture_output=True, text=True)


class VariantBuilder:
    """Compiles the cffi wrapper and the untouched sources once; each build() relinks with overrides."""

    def __init__(self, outdir: Path, cflags: list[str], ldflags: list[str] = (), werror: bool = True):
        self.outdir = Path(outdir)
        self.cflags = BASE_CFLAGS + list(cflags) + (["-Werror"] if werror else [])
        self.ldflags = list(ldflags)
        self.outdir.mkdir(parents=True, exist_ok=True)
        wrapper = self.outdir / "_safety_cffi.c"
        ns = runpy.run_path(str(SAFETY / "safety_build.py"))
        with contextlib.redirect_stdout(io.StringIO()):  # cffi prints "generating ..."
            ns["ffibuilder"].emit_c_code(str(wrapper))
        # cffi's generated code is not ours: the same relaxed flags as site_scons/cffi_module.py
        wrap_flags = [f for f in self.cflags if f not in ("-Wextra", "-Werror")] + ["-Wno-unused-parameter"]
        compile_c(wrapper, self.outdir / "obj" / "_safety_cffi.o", wrap_flags)
        self.objects = {rel: self.outdir / "obj" / (rel.replace("/", "__") + ".o") for rel in sources()}
        for rel, obj in self.objects.items():
            compile_c(SAFETY / rel, obj, self.cflags)
        self.builds = 0

    def build(self, overrides: dict[str, str] | None = None) -> Path:
        """Links a module; `overrides` maps a source (relative to the safety folder) to replacement text.
        Raises subprocess.CalledProcessError when a replacement does not compile."""
        self.builds += 1
        tag = self.outdir / f"build{self.builds}"
        tag.mkdir()
        objs = []
        for rel, obj in self.objects.items():
            if overrides and rel in overrides:
                # The replacement lives beside the real file's include path: it includes by repository path.
                src = tag / "src" / rel
                src.parent.mkdir(parents=True, exist_ok=True)
                src.write_text(overrides[rel])
                obj = tag / "obj" / (rel.replace("/", "__") + ".o")
                compile_c(src, obj, self.cflags)
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
