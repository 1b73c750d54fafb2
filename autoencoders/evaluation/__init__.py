"""The evaluation wing: linear probe (probe.py), anomaly detection (anomaly.py), the VAE's
importance-weighted likelihood (likelihood.py), evaluate_model, which runs them (suite.py), and
`ae-eval`'s re-test and evaluation of a finished run (finished_run.py)."""
