"""The compare wing, behind `ae-compare`: the runs below a directory (collect.py), their table
(table.py) and plots (plot.py). It reads metrics.json files only and never imports torch."""
