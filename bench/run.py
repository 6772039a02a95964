"""Benchmark entry point: `python bench/run.py [--quick] [--scenarios ...] [--out FILE]`.

Also `python -m bench.run`. See bench/harness.py for what runs and docs/benchmarks.md for results.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import main

if __name__ == "__main__":
    sys.exit(main())
