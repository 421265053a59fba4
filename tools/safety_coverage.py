#!/usr/bin/env python3
"""Line coverage of the C safety layer: builds it with --coverage into a temporary folder (never the
real build), runs the safety tests against that copy, and reports gcov's line coverage of every C
source, with the lines never run. Exits 1 below --min percent (default 100).

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
DEFAULT_TESTS = [f"{TEST_DIR}/{n}" for n in ("test_modes.py", "test_core.py", "test_toyota_rx.py", "test_toyota_tx.py",
                                             "test_model_agreement.py", "test_fuzz.py", "test_real_data.py")]


def gcov_lines(source: Path, obj: Path) -> tuple[int, list[tuple[int, str]]]:
    """(executable lines, [(line number, text) never executed]) for one source."""
    out = subprocess.run(["gcov", "--stdout", "-o", str(obj), str(source)], cwd=obj.parent, check=True,
                         capture_output=True, text=True).stdout
    executable, missed = 0, []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) < 3 or not parts[1].strip().isdigit() or int(parts[1]) == 0:
            continue
        count = parts[0].strip()
        if count == "-":
            continue
        executable += 1
        if count.startswith(("#####", "=====")):
            missed.append((int(parts[1]), parts[2].strip()))
    return executable, missed


def measure(tests: list[str]) -> tuple[dict[str, tuple[int, list[tuple[int, str]]]], subprocess.CompletedProcess]:
    with tempfile.TemporaryDirectory(prefix="safety-cov-") as tmp:
        builder = VariantBuilder(Path(tmp), COVERAGE, ["--coverage"])
        result = run_tests(builder.build(), tests, stop_first=False)
        report = {rel: gcov_lines(SAFETY / rel, obj) for rel, obj in builder.objects.items()}
    return report, result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tests", nargs="+", default=DEFAULT_TESTS)
    ap.add_argument("--min", type=float, default=100.0, help="fail below this total line coverage, percent")
    args = ap.parse_args(argv)

    report, result = measure(args.tests)
    if result.returncode != 0:
        print(result.stdout[-3000:])
        print("the tests failed against the coverage build")
        return 2
    total = sum(n for n, _ in report.values())
    missed = sum(len(m) for _, m in report.values())
    for rel, (n, miss) in sorted(report.items()):
        print(f"{rel:24s} {n - len(miss):4d}/{n:<4d} lines  {100.0 * (n - len(miss)) / max(n, 1):6.2f}%")
        for lineno, text in miss:
            print(f"    not run: {rel}:{lineno}: {text}")
    pct = 100.0 * (total - missed) / max(total, 1)
    print(f"{'total':24s} {total - missed:4d}/{total:<4d} lines  {pct:6.2f}%")
    return 0 if pct >= args.min else 1


if __name__ == "__main__":
    sys.exit(main())
