"""Start-up time of the command line, as ratios to importing Typer and Rich alone.

Each case runs ``--runs`` times as a fresh process (the same way a shell loop or a CI job
pays it); the figure is the median wall time. Goals (issue 11): ``--version`` and ``--help``
within 2.5x of ``python -c "import typer, rich.console"``, a light ``check`` of the sample
(``--require nan_rows==0``) within 5x. Also lists which heavy modules each case imported.

    python bench/bench_startup.py            # 7 runs of each case
    python bench/bench_startup.py --runs 3
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "emb.npy"
HEAVY = ("numba", "faiss", "pyarrow", "matplotlib", "dask", "numpy")
GOALS = {"--version": 2.5, "--help": 2.5, "check nan_rows==0": 5.0}


def embedkit() -> list[str]:
    script = Path(sys.executable).with_name("embedkit")
    return [str(script)] if script.exists() else [sys.executable, "-m", "embedkit.cli.entry"]


def timed(command: list[str], runs: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def heavy_modules(args: list[str]) -> list[str]:
    """The heavy modules a run of ``args`` imports (``-X importtime`` of the same entry)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "embedkit.cli.entry", *args], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    names = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    return [name for name in HEAVY if name in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    cases = {
        "--version": ["--version"],
        "--help": ["--help"],
        "mine --help": ["mine", "--help"],
        "check nan_rows==0": ["check", str(SAMPLE), "--require", "nan_rows==0"],
    }
    timed(embedkit() + ["--version"], 1)  # warm the file cache and the bytecode
    baseline = [sys.executable, "-c", "import typer, rich.console"]
    print(f"baseline: python -c 'import typer, rich.console'; each case alternates with it, {args.runs} runs each "
          "(medians), so a busy machine slows both alike")
    print(f"{'case':<20} {'median':>8} {'baseline':>9} {'ratio':>6} {'goal':>6}  heavy modules imported")
    for name, argv in cases.items():
        case_times, base_times = [], []
        for _ in range(args.runs):
            base_times.append(timed(baseline, 1))
            case_times.append(timed(embedkit() + argv, 1))
        seconds, base = statistics.median(case_times), statistics.median(base_times)
        goal = GOALS.get(name)
        mark = "" if goal is None else f"{'<=' if seconds / base <= goal else '> '}{goal:.1f}"
        print(f"{name:<20} {seconds * 1000:6.0f} ms {base * 1000:6.0f} ms {seconds / base:5.2f}x {mark:>6}  "
              f"{', '.join(heavy_modules(argv)) or '-'}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS of a child: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
