"""The run directory's contract.

record.py       metrics.json, the run's record (with its schema_version)
lock.py         the OS lock one process holds for the run's life
leftovers.py    what a process killed outright left: dead writers' temporary files, its attempt marked killed
checkpoints.py  checkpoints read and written; the one rule for whether one belongs to a run
attempt.py      <run>/attempt/: where a resume writes until it completes, and its promotion
resume.py       what a resume may do, decided before any file is touched
loading.py      load_run and instantiate: objects back from configs and run directories
trust.py        what opening a run may import: shipped targets, CLASS_ALIASES, and what the user allows
per_image.py    per-image test values (test_nll.csv), for comparing runs image by image
"""
