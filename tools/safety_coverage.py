#!/usr/bin/env python3
"""Line coverage of the C safety layer: builds it with --coverage into a temporary folder (never the real
build), runs the safety tests against that copy, and reports gcov's line coverage of roadpilot's wrapper
(safety.c) and of each opendbc header it compiles in (one translation unit), with the wrapper's lines never
run. Exits 1 when the wrapper is below --min percent (default 100). opendbc's own headers are reported, not
gated: its modes for brands our tests do not drive are mostly unrun here (opendbc's CI covers them).

    .venv/bin/python tools/safety_coverage.py
    .venv/bin/python tools/safety_coverage.py --tests selfdrive/car/safety/tests/test_core.py --min 0
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from selfdrive.car.safety.tests.build_variant import COVERAGE, SAFETY, VariantBuilder, run_tests  # noqa: E402

TEST_DIR = "selfdrive/car/safety/tests"
DEFAULT_TESTS = [f"{TEST_DIR}/{n}" for n in ("test_core.py", "test_brands.py", "test_fuzz.py", "test_real_data.py")]
Report = dict[str, tuple[int, list[tuple[int, str]]]]


def gcov_files(source: Path, obj: Path) -> Report:
    """{file: (executable lines, [(line, text) never executed])} for a source and every header it includes."""
    out = subprocess.run(["gcov", "--stdout", "-o", str(obj), str(source)], cwd=obj.parent, check=True,
                         capture_output=True, text=True).stdout
    report: Report = {}
    current = None
    for line in out.splitlines():
        parts = line.split(":", 3)
        if len(parts) >= 4 and parts[1].strip() == "0" and parts[2] == "Source":
            current = parts[3]
            report.setdefault(current, (0, []))
            continue
        if current is None or len(parts) < 3 or not parts[1].strip().isdigit() or int(parts[1]) == 0:
            continue
        count = parts[0].strip()
        if count == "-":
            continue
        n, missed = report[current]
        if count.startswith(("#####", "=====")):
            missed.append((int(parts[1]), parts[2].strip()))
        report[current] = (n + 1, missed)
    return report


def measure(tests: list[str]) -> tuple[Report, subprocess.CompletedProcess]:
    with tempfile.TemporaryDirectory(prefix="safety-cov-") as tmp:
        builder = VariantBuilder(Path(tmp), COVERAGE, ["--coverage"])
        result = run_tests(builder.build(), tests, stop_first=False)
        report: Report = {}
        for rel, obj in builder.objects.items():
            report.update(gcov_files(SAFETY / rel, obj))
    return report, result


def short(path: str) -> str:
    return path.split("site-packages/")[-1] if "site-packages/" in path else Path(path).name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tests", nargs="+", default=DEFAULT_TESTS)
    ap.add_argument("--min", type=float, default=100.0, help="fail when the wrapper's line coverage is below this")
    args = ap.parse_args(argv)

    report, result = measure(args.tests)
    if result.returncode != 0:
        print(result.stdout[-3000:])
        print("the tests failed against the coverage build")
        return 2
    wrapper_pct = 0.0
    for path, (n, miss) in sorted(report.items(), key=lambda kv: short(kv[0])):
        pct = 100.0 * (n - len(miss)) / max(n, 1)
        print(f"{short(path):40s} {n - len(miss):4d}/{n:<4d} lines  {pct:6.2f}%")
        if Path(path).name == "safety.c" and "opendbc" not in path:
            wrapper_pct = pct
            for lineno, text in miss:
                print(f"    not run: safety.c:{lineno}: {text}")
    print(f"{'wrapper (safety.c)':40s} {wrapper_pct:6.2f}%")
    return 0 if wrapper_pct >= args.min else 1


if __name__ == "__main__":
    sys.exit(main())
