"""What the tests and the benchmarks both need to run the stack's real processes (harness.processes)."""
