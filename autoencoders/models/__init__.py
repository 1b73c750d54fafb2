"""The models wing: the shared training loop (base.py), one file per objective, the networks
(nets.py), the pure loss maths (losses.py) and helpers for running a trained model (inference.py)."""
