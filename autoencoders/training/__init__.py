"""The training wing: one run, from a composed config to a tested, evaluated run directory.

job.py          one Hydra job around a run directory, and ae-train resume=<run>
opening.py      before anything is built: the config checked, paths made absolute, the record opened
pipeline.py     train(cfg): build data, model and trainer; fit, test, evaluate, write the record
building.py     prepare(cfg): data and model built and checked against the data, evaluations and machine
trainer.py      build_trainer: loggers, checkpoints, views, signal handling, progress bar, callbacks
callback_group.py  several callbacks as one, so Lightning's per-step hook calls stay few
profiling.py    the Trainer's profiler when none is asked for: one that costs nothing
run_loggers.py  what a run tells its loggers beside TensorBoard (conf/logger/)
timing.py       callbacks=timing: <run>/timing.json
signals.py      stopping cleanly on SIGINT or SIGTERM, in every phase
sweep.py        a job whose directory already holds a run; the end-of-sweep summary
"""
