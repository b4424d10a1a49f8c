#!/usr/bin/env python
"""Run bss-bench suites: ``python run_benchmark.py --suite triangles|mesa|all`` (see --help)."""

import sys

from benchmark.cli import main

if __name__ == "__main__":
    sys.exit(main())
