"""The images of a run's TensorBoard event files, read with TensorBoard's own EventAccumulator.

ae-compare --images shows each run's image drawn with the tested checkpoint after testing: the
one at the step of the run's test/* scalars (training logs it there once more, see
views/images.py), so that the picture and the number beside it describe the same weights.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TEST_SCALAR = "test/mse"  # every model logs it at the test step


@dataclass
class RunImage:
    """One image of a run: PNG bytes, its step, and whether it was drawn after testing."""

    png: bytes
    step: int
    tested: bool


def read_events(run_dir: Path) -> Any:
    """The run's EventAccumulator with every image and scalar kept (its files in `run_dir` only,
    not ae-eval's under eval/)."""
    from tensorboard.backend.event_processing import event_accumulator

    # TensorBoard's reader logs each file it moves on to at INFO; ae-compare's output is the grid.
    logging.getLogger("tensorboard").setLevel(logging.WARNING)
    keep_all = {event_accumulator.IMAGES: 0, event_accumulator.SCALARS: 0}
    events = event_accumulator.EventAccumulator(str(run_dir), size_guidance=keep_all)
    events.Reload()
    return events


def image_tags(events: Any) -> list[str]:
    return list(events.Tags()["images"])


def tested_image(events: Any, tag: str) -> RunImage | None:
    """The image of `tag` at the step where test/* were logged; else (a run that was not tested,
    or trained before images were drawn after testing) the last one, marked as not tested.

    By write time, not file order: the accumulator reads files in name order, and the test
    phase's file can sort before the training one (Lightning reopens its writer after fit).
    """
    if tag not in image_tags(events):
        return None
    images = sorted(events.Images(tag), key=lambda image: (image.wall_time, image.step))
    if TEST_SCALAR in events.Tags()["scalars"]:
        test_step = max(events.Scalars(TEST_SCALAR), key=lambda scalar: scalar.wall_time).step
        at_test = [image for image in images if image.step == test_step]
        if at_test:
            return RunImage(at_test[-1].encoded_image_string, test_step, tested=True)
    return RunImage(images[-1].encoded_image_string, images[-1].step, tested=False)
