"""The training wing: one Hydra job around a run directory (job.py), train(cfg) from a composed
config to a tested, evaluated run (pipeline.py), the Lightning Trainer it builds (trainer.py),
stopping cleanly on a signal (signals.py), and re-running into a sweep's directory (sweep.py)."""
