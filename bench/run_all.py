"""`make bench`: every benchmark in bench/, each comparing against its own baseline in the same run,
then one table of every ratio with its target and PASS/MISS.

    python bench/run_all.py [NAME ...]     e.g. `python bench/run_all.py sync sql` (default: all)

Each `*_bench.py` prints what it measures as it goes and one `BENCH {json}` line per ratio
(bench/common.py `report`). Exit status 1 when a bench failed to run; a MISS alone does not fail
(the table says it), so the numbers are still printed while work on a target is under way.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# engine_bench's batch-1 baseline costs one store transaction per record: 2,000 keep it to seconds.
ARGS = {"engine_bench": ["--records", "2000"]}


def run(script: Path) -> tuple[list[dict[str, Any]], bool]:
    results: list[dict[str, Any]] = []
    args = [sys.executable, str(script), *ARGS.get(script.stem, [])]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=HERE)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("BENCH "):
            results.append(json.loads(line[6:]))
        else:
            print(line, end="", flush=True)
    return results, proc.wait() == 0


def table(rows: list[dict[str, Any]]) -> str:
    width = max([len(r["bench"]) for r in rows] + [5])
    lines = [f"{'bench':<{width}}  {'ratio':>8}  {'target':>8}  result  measured", "-" * (width + 60)]
    for r in rows:
        ok = r["ratio"] >= r["target"] if r["op"] == ">=" else r["ratio"] <= r["target"]
        lines.append(f"{r['bench']:<{width}}  {r['ratio']:>8.3f}  {r['op']} {r['target']:<5g}  "
                     f"{'PASS' if ok else 'MISS':<6}  {r['detail']}")
    return "\n".join(lines)


def main() -> int:
    wanted = set(sys.argv[1:])
    rows: list[dict[str, Any]] = []
    failed: list[str] = []
    start = time.perf_counter()
    for script in sorted(HERE.glob("*_bench.py")):
        if wanted and script.stem.removesuffix("_bench") not in wanted:
            continue
        print(f"== {script.name}", flush=True)
        results, ok = run(script)
        rows += results
        if not ok:
            failed.append(script.name)
    print(f"\n== all ratios ({time.perf_counter() - start:,.0f} s)")
    print(table(rows) if rows else "no results")
    if failed:
        print(f"failed to run: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
