"""The run directory's contract: its record metrics.json (record.py), the lock one process holds
for the run's life (lock.py), checkpoints read and written (checkpoints.py), what a resume may
do (resume.py), and objects back from a run directory (loading.py)."""
