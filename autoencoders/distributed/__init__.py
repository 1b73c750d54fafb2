"""Several processes.

processes.py   which process of a run this is (rank 0 writes)
ddp.py         how DDP's other processes start and end
torch_setup.py the thread policy (threads_per_job) and the torch set-up every process shares
launchers.py   a multirun's launcher: absolute sweep dir, Ray's settings and connection
"""
