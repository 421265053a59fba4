#!/usr/bin/env python3
"""Mutation check of the C safety layer: opendbc's safety C (a private copy of the wheel's headers, never
the wheel) and roadpilot's wrapper around it. Flips each comparison (< <=, > >=, == !=), moves each numeric
limit by one (#define values, numbers compared against, `.field = N` initialisers such as a mode's
`.max_torque`, tx table lengths), one mutant at a time; builds each into a temporary folder (never the real
build) and runs the safety tests against it. A mutant the tests do not notice "survives": a rule could be
wrong without any test failing. Exits 1 if any mutant survives.

    .venv/bin/python tools/safety_mutation.py                  # the default files, many minutes
    .venv/bin/python tools/safety_mutation.py --sample 3       # three random ones
    .venv/bin/python tools/safety_mutation.py --files opendbc/safety/modes/honda.h --list
    .venv/bin/python tools/safety_mutation.py --only ".max_torque 1500 -> 1501" --only "helpers.h:44"

A line holding `NOMUT` is left alone; its comment must say why a change there cannot be observed
(an equivalent mutant). Those lines are listed in the report.
"""

import argparse
import importlib
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from selfdrive.car.safety.tests.build_variant import (  # noqa: E402
    OPENDBC_INCLUDE,
    SAFETY,
    VariantBuilder,
    opendbc_headers,
    sources,
)

TEST_DIR = "selfdrive/car/safety/tests"
# Fast, targeted tests first: most mutants die in the first file.
DEFAULT_TESTS = [f"{TEST_DIR}/{n}" for n in ("test_brands.py", "test_core.py", "test_real_data.py", "test_fuzz.py")]
# What the tests here are meant to pin down: the shared torque/accel limit code, the Toyota mode, opendbc's
# frame handling, and roadpilot's wrapper. Other modes' headers can be named with --files.
DEFAULT_FILES = ["safety.c", "opendbc/safety/helpers.h", "opendbc/safety/lateral.h", "opendbc/safety/longitudinal.h",
                 "opendbc/safety/modes/toyota.h"]
FLIP = {"<": "<=", "<=": "<", ">": ">=", ">=": ">", "==": "!=", "!=": "=="}
TOKEN = re.compile(r"<<=|>>=|<<|>>|->|<=|>=|==|!=|<|>")
DEFINE = re.compile(r"^#define\s+(\w+)\s+\(?(-?)(0x[0-9A-Fa-f]+|\d+)(U?)\)?\s*(//.*)?$")
TABLE_LEN = re.compile(r"\{(0x[0-9A-Fa-f]+), (\d+|\(\w+\)), (\d+)[,}]")  # {addr, bus, len, ...}
FIELD = re.compile(r"\.(\w+) = (-?)(\d+)(U?)\b")  # a designated initialiser: .max_torque = 1500
LITERAL = re.compile(r"\s*\(?(-?)(\d+)(U?)\b")  # a number right after a comparison


@dataclass(frozen=True)
class Mutant:
    rel: str        # "safety.c", or an opendbc header relative to the include root
    line: int       # 1-based
    start: int      # offset in the file
    end: int
    replacement: str
    what: str
    text: str = ""  # the source line, to name a mutant by what it changes (--only)

    def apply(self, text: str) -> str:
        return text[:self.start] + self.replacement + text[self.end:]

    def __str__(self) -> str:
        return f"{self.rel}:{self.line} {self.what} in `{self.text}`"


def code_mask(text: str) -> str:
    """The text with comments, string/char literals and #include lines blanked out (same length)."""
    out = list(text)
    i, n = 0, len(text)
    while i < n:
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i) + 2
        elif text[i] in "\"'":
            j = i + 1
            while text[j] != text[i]:
                j += 2 if text[j] == "\\" else 1
            j += 1
        elif text.startswith("#include", i):
            j = text.find("\n", i)
        else:
            i += 1
            continue
        for k in range(i, j):
            if out[k] != "\n":
                out[k] = " "
        i = j
    return "".join(out)


def plus_minus(value: str, negative: bool) -> list[str]:
    v = int(value, 0) * (-1 if negative else 1)
    return [str(x) for x in (v - 1, v + 1) if x >= 0 or negative]


def find_mutants(rel: str, text: str) -> tuple[list[Mutant], list[str]]:
    mutants, skipped = [], []
    masked = code_mask(text)
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
    lines = text.split("\n")
    for lineno, (line, mline) in enumerate(zip(lines, masked.split("\n"), strict=True), start=1):
        base = line_starts[lineno - 1]
        src = line.strip()[:80]
        if "NOMUT" in line:
            skipped.append(f"{rel}:{lineno} {line.strip()}")
            continue
        if (d := DEFINE.match(line)) and not mline.strip().startswith("#include"):
            name, neg, value, suffix = d.group(1), d.group(2) == "-", d.group(3), d.group(4)
            s, e = d.start(3) - (1 if neg else 0), d.end(4)
            for new in plus_minus(value, neg):
                mutants.append(Mutant(rel, lineno, base + s, base + e, new + suffix, f"{name} {neg and '-' or ''}"
                                      f"{value} -> {new}", src))
            continue
        if mline.lstrip().startswith("#"):
            continue
        for t in TOKEN.finditer(mline):
            if t.group() not in FLIP:
                continue
            mutants.append(Mutant(rel, lineno, base + t.start(), base + t.end(), FLIP[t.group()],
                                  f"'{t.group()}' -> '{FLIP[t.group()]}'", src))
            if lit := LITERAL.match(mline, t.end()):
                neg, value, suffix = lit.group(1) == "-", lit.group(2), lit.group(3)
                s, e = lit.start(2) - (1 if neg else 0), lit.end(3)
                for new in plus_minus(value, neg):
                    mutants.append(Mutant(rel, lineno, base + s, base + e, new + suffix,
                                          f"literal {neg and '-' or ''}{value} after '{t.group()}' -> {new}", src))
        for f in FIELD.finditer(mline):
            neg, value, suffix = f.group(2) == "-", f.group(3), f.group(4)
            s, e = f.start(3) - (1 if neg else 0), f.end(4)
            for new in plus_minus(value, neg):
                mutants.append(Mutant(rel, lineno, base + s, base + e, new + suffix,
                                      f".{f.group(1)} {neg and '-' or ''}{value} -> {new}", src))
        for t in TABLE_LEN.finditer(mline):
            for new in plus_minus(t.group(3), False):
                mutants.append(Mutant(rel, lineno, base + t.start(3), base + t.end(3), new,
                                      f"table length of {t.group(1)} {t.group(3)} -> {new}", src))
    return mutants, skipped


def read_target(rel: str) -> str:
    return (OPENDBC_INCLUDE / rel if rel.startswith("opendbc/") else SAFETY / rel).read_text()


def all_mutants(files: list[str]) -> tuple[list[Mutant], list[str], dict[str, str]]:
    texts = {rel: read_target(rel) for rel in files}
    mutants, skipped = [], []
    for rel, text in texts.items():
        m, s = find_mutants(rel, text)
        mutants += m
        skipped += s
    return mutants, skipped, texts


def prewarm(tests: list[str]) -> None:
    """Imports pytest, hypothesis, the test modules and the real data once, before any fork: each mutant's
    test run then starts in milliseconds instead of seconds. Nothing here loads the C module."""
    import hypothesis  # noqa: F401
    import pytest  # noqa: F401

    os.chdir(ROOT)
    for t in tests:
        path = Path(t.split("::")[0]).resolve()
        if path.is_relative_to(ROOT) and path.suffix == ".py":
            importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
    from selfdrive.car.safety import _module
    from selfdrive.car.safety.tests import realdata
    assert _module is None, "a test module loaded the C module at import"
    if realdata.available():
        realdata.frames()


def forked_pytest(module: Path, tests: list[str], timeout: float) -> tuple[int | None, str]:
    """Runs pytest against `module` in a forked child of this (prewarmed) process. (None, output) on timeout."""
    out = module.parent / "pytest.out"
    pid = os.fork()
    if pid == 0:  # the child: load the mutant, run the tests, never return
        rc = 99
        try:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.environ["ROADPILOT_SAFETY_LIB"] = str(module)
            # failing examples found against a mutant must not be replayed against the real build later
            os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = str(module.parent / ".hypothesis")
            import pytest
            rc = int(pytest.main(["-q", "-x", "-p", "no:cacheprovider", *tests]))
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(rc)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), out.read_text(errors="replace")
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return None, out.read_text(errors="replace")
        time.sleep(0.01)


def first_failure(output: str) -> str:
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" ")[1].split("::", 1)[-1][:90]
    tail = output.strip().splitlines()
    return tail[-1][:90] if tail else "no output"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sample", type=int, help="run only this many mutants, picked at random")
    ap.add_argument("--seed", type=int, default=0, help="seed for --sample")
    ap.add_argument("--only", action="append", default=[],
                    help="run only mutants whose 'file:line what in `source line`' contains this text "
                         "(repeatable: any may match)")
    ap.add_argument("--files", nargs="+", default=DEFAULT_FILES,
                    help="what to mutate: safety.c and/or opendbc headers (opendbc/safety/...); 'all' for every one")
    ap.add_argument("--tests", nargs="+", default=DEFAULT_TESTS, help="test files to run against each mutant")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per mutant's test run")
    args = ap.parse_args(argv)

    files = sources() + opendbc_headers() if args.files == ["all"] else args.files
    mutants, skipped, texts = all_mutants(files)
    if args.only:
        mutants = [m for m in mutants if any(only in str(m) for only in args.only)]
    if args.sample is not None:
        mutants = random.Random(args.seed).sample(mutants, min(args.sample, len(mutants)))
    if args.list:
        for m in mutants:
            print(m)
        print(f"{len(mutants)} mutants; {len(skipped)} NOMUT lines")
        return 0

    killed, survived, not_viable = [], [], []
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="safety-mut-") as tmp:
        print(f"building the unmutated objects in {tmp} ...", flush=True)
        builder = VariantBuilder(Path(tmp), ["-O1"], werror=False)
        prewarm(args.tests)
        rc, output = forked_pytest(builder.build(), args.tests, args.timeout)
        if rc != 0:
            print("the tests fail on the unmutated build; fix that first:\n" + output[-3000:])
            return 2
        for i, m in enumerate(mutants, start=1):
            t0 = time.monotonic()
            try:
                module = builder.build({m.rel: m.apply(texts[m.rel])})
            except subprocess.CalledProcessError as e:
                not_viable.append(m)
                print(f"[{i}/{len(mutants)}] {m}: does not compile ({e.stderr.strip().splitlines()[-1][:80]})",
                      flush=True)
                continue
            rc, output = forked_pytest(module, args.tests, args.timeout)
            if rc is None:
                verdict, why = "killed", f"timed out after {args.timeout:.0f} s"
            elif rc < 0:
                verdict, why = "killed", f"crashed (signal {-rc})"
            else:
                verdict, why = ("killed", first_failure(output)) if rc != 0 else ("SURVIVED", "")
            (killed if verdict == "killed" else survived).append(m)
            print(f"[{i}/{len(mutants)}] {m}: {verdict} {why} ({time.monotonic() - t0:.1f} s)", flush=True)

    print(f"\n{len(killed)} killed, {len(survived)} survived, {len(not_viable)} did not compile, "
          f"of {len(mutants)} mutants in {time.monotonic() - t_start:.0f} s")
    if skipped:
        print(f"{len(skipped)} lines left alone (NOMUT, equivalent mutants):")
        for s in skipped:
            print(f"  {s}")
    for m in survived:
        print(f"SURVIVOR: {m}")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
