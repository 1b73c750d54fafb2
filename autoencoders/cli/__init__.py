"""The entry points: `ae-train` (train.py), `ae-eval` (evaluate.py), `ae-compare` (compare.py),
`ae-predict` (predict.py).
Each parses its command line, calls one function of the package, and reports; nothing else."""
