"""The evaluation wing: linear probe (probe.py), anomaly detection (anomaly.py), the VAE's
importance-weighted likelihood (likelihood.py), and evaluate_model, which runs them (evaluate.py)."""
