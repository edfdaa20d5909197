"""Benchmarks of the Charge Service: `make bench` (compose/local/bench.sh) runs benchmarks.run."""
