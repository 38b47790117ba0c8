"""asv benchmarks of bilevelbench (run from the repository root: ``asv run --python=same --quick``)."""
