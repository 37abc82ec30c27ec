"""xinit's benchmark suite: ``python -m benchmarks`` (or ``./dev.sh bench``)."""
