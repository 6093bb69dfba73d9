"""deepmetric's benchmark harness: `python -m benchmarks --help` (see `benchmarks/RESULTS.md`).

Imports only the standard library here; torch and the libraries load in the measuring subprocesses.
"""
