"""Benchmarks (`make bench`, `python -m bench.run`): measured numbers beside the paper's."""
