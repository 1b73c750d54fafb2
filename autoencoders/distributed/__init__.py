"""Several processes: which process of a run this is (processes.py), how DDP's other processes
start and end (ddp.py), and the thread policy and torch set-up every process shares
(torch_setup.py)."""
