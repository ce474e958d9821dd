"""Loaded at start-up by Python processes that have this folder on PYTHONPATH (the benchmark's
reading processes): switches their xlsx parser when PIPELINE_BENCH_READER says so."""

import os

if os.environ.get("PIPELINE_BENCH_READER"):
    from benchmarks.readers import install

    install()
