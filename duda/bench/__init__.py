"""Benchmarks a user can run: `python -m duda.bench {accuracy,speed}`.

Figures come from one command each, never from timed tests: machines are noisy, so the speed
benchmark reports ratios measured side by side in one process, and the accuracy benchmark
trains every method on the same generated data and seeds.
"""
