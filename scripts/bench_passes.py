"""Seconds of what runs after testing (the latent views' codes and evaluate_model) with the shared
pass over the data (machinery/passes.py) and with a pass per consumer, as before issue 25: side by
side in one process, taking turns, on a finished run's tested weights; and the images each
sends through the encoder.

    .venv/bin/python scripts/bench_passes.py <run-dir> [--threads 1] [--holdout-class 9] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from autoencoders.data import ImageDataModule
from autoencoders.evaluation import suite
from autoencoders.machinery import passes as passes_module
from autoencoders.machinery.inference import evaluating
from autoencoders.rundir.loading import load_run


class Unshared(passes_module.SplitPasses):
    """Nothing kept: every call encodes (and decodes) again, as each evaluation did on its own."""

    def codes(self, split, index=None):
        return self._encode(split, index)

    def errors(self, split):
        self._errors.clear()
        return super().errors(split)


def once(model, data, shared: bool, encoded: list[int]) -> float:
    settings = {"anomaly_images": 0, "nll_samples": 0}
    subset = torch.randperm(len(data.labels("test")), generator=torch.Generator().manual_seed(0))[:2000]
    original = suite.passes_of
    if not shared:
        suite.passes_of = lambda model, datamodule: Unshared(model, datamodule, whole=())
    encoded.clear()
    started = time.perf_counter()
    with suite.shared_passes(settings, model, data):
        with evaluating(model):  # what LatentViews asks for after testing
            suite.passes_of(model, data).codes("test", subset)
        suite.evaluate_model(settings, model, data)
    suite.passes_of = original
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--holdout-class", type=int)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, encoded = load_run(args.run), []
    encode = model.encode
    model.encode = lambda x, *given: (encoded.append(len(x)), encode(x, *given))[1]
    data = ImageDataModule(holdout_class=args.holdout_class)
    data.setup()
    once(model, data, True, encoded)  # imports
    seconds, images = {True: [], False: []}, {}
    for repeat in range(args.repeats):
        for shared in (True, False) if repeat % 2 == 0 else (False, True):
            seconds[shared].append(once(model, data, shared, encoded))
            images[shared] = sum(encoded)
    for shared, words in ((True, "shared pass"), (False, "a pass per consumer")):
        values = seconds[shared]
        print(
            f"{words}: {statistics.median(values):.3f} s ({min(values):.3f}-{max(values):.3f}), "
            f"{images[shared]} images encoded"
        )
    print(f"shared/separate: {statistics.median(seconds[True]) / statistics.median(seconds[False]):.2f}")


if __name__ == "__main__":
    main()
