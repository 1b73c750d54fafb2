"""The runs wing: train(cfg) and everything around one run directory: its record (metrics.json),
checkpoints and resuming, signals, sweeps, loading a finished run, re-evaluating it (ae-eval),
and the torch set-up every run shares."""
