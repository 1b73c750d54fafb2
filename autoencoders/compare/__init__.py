"""The compare wing, behind `ae-compare`. It reads metrics.json, event files and per-image value files only and never
imports torch.

collect.py  one Run per metrics.json below a directory
table.py    the table, seeds grouped as mean and sample std
plot.py     --plot: a metric against a setting, one line per value of another
grid.py     --images: the same image from every run on one PNG
events.py   reading images back from TensorBoard event files
paired.py   --paired: runs against a baseline image by image (per-image test/nll), with standard errors
"""
