"""Benchmarks (`make bench`); results are recorded under bench/results/."""
