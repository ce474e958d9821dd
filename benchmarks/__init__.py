"""Benchmarks of the pipeline against a plain fastexcel read (issue 7): generate, baseline, run."""
