"""The splicegate benchmark harness; bench/bench.py is its entry point."""
