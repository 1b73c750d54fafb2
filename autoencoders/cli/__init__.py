"""The entry points: `ae-train` (train.py), `ae-eval` (evaluate.py), `ae-compare` (compare.py).
Each parses its command line, calls one function of the package, and reports; nothing else."""
