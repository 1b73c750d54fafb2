"""`scripts/bench.py --profile`: where (c)'s milliseconds go, beside a timed (a)."""

from __future__ import annotations

import argparse
import cProfile
import pstats
import re
import time
from collections import defaultdict
from pathlib import Path

from bench_paths import Interleave, MinimalLoop, compose_config, run_ours
from torch import Tensor


def profile(args: argparse.Namespace, images: Tensor, tmp: Path) -> None:
    """Per-step milliseconds of (c) by Lightning's SimpleProfiler beside a timed (a), interleaved
    as in the speed table; then a cProfile of one more (c) epoch."""
    epochs = args.profile_epochs
    cfg = compose_config(args.profile_model, epochs + 1, args.threads, tmp)
    minimal = MinimalLoop(images, cfg.model.net, cfg.model.latent_dim, cfg.data.batch_size)
    first: dict[str, int] = {}  # per action: index of its first call after the warm-up epoch
    last: dict[str, int] = {}  # ... and after the last training epoch (test and teardown follow)
    a_done = defaultdict(lambda: [0, 0.0])  # epoch -> [images, seconds]

    def work(epoch: int) -> None:
        start = time.perf_counter()
        a_done[epoch][0] += minimal.steps(args.chunk, timed=True)
        a_done[epoch][1] += time.perf_counter() - start

    def at_epoch_start(epoch: int) -> None:
        if epoch == 1:  # drop the warm-up epoch from both
            minimal.parts.clear()
            first.update(
                {action: len(durations) for action, durations in clock.trainer.profiler.recorded_durations.items()}
            )

    def at_end() -> None:
        last.update({action: len(durations) for action, durations in clock.trainer.profiler.recorded_durations.items()})

    clock = Interleave(work, args.chunk, at_epoch_start, at_end)
    run_ours(cfg, tmp / "profile-simple", clock, profiler="simple")
    steps_c = epochs * -(-clock.images_per_epoch // cfg.data.batch_size)
    steps_a = sum(a_done[epoch][0] for epoch in range(1, epochs + 1)) / cfg.data.batch_size
    measured = {
        action: durations[first.get(action, 0) : last.get(action, 0)]
        for action, durations in clock.trainer.profiler.recorded_durations.items()
    }
    ms = {
        action: 1000 * sum(durations) / steps_c
        for action, durations in measured.items()
        if durations and "Interleave" not in action
    }

    def total(*patterns: str) -> float:
        return sum(value for action, value in ms.items() if any(re.search(pattern, action) for pattern in patterns))

    phases = {name: 1000 * seconds / steps_c for name, seconds in clock.phase_seconds(slice(1, None)).items()}
    data = total(r"train_dataloader_next$", r"\.batch_to_device$", r"batch_transfer$")
    forward, backward = total(r"Strategy\].*\.training_step$"), total(r"Strategy\].*\.backward$")
    step, batch = total(r"\]\w+\.optimizer_step$"), total(r"^run_training_batch$")
    hooks = total(r"on_train_batch_(start|end)$")
    a_ms = {part: 1000 * seconds / steps_a for part, seconds in minimal.parts.items()}
    rows = [
        ("data: fetch the batch (c: and move it to the device)", a_ms["data"], data),
        ("forward + loss (c: training_step, with its logging)", a_ms["forward"], forward),
        ("backward (a: with zero_grad)", a_ms["backward"], backward),
        ("optimizer step (c: + zero_grad and hooks in the closure)", a_ms["optimizer"], step - forward - backward),
        ("automatic optimization around the step", 0.0, batch - step),
        ("on_train_batch_start/end hooks (progress bar, callbacks)", 0.0, hooks),
        ("rest of Lightning's training loop (and the profiler)", 0.0, phases["train"] - data - batch - hooks),
        ("validation of 5,000 images, image grids (per training step)", 0.0, phases["validation"]),
        ("epoch end: checkpoints, epoch logging (per training step)", 0.0, phases["epoch end"]),
    ]
    print(
        f"\n{args.profile_model}, {args.threads} threads, {epochs} epochs after a warm-up, paths alternating every {args.chunk} steps; "
        f"ms per training step ((a) {steps_a:.0f} steps; (c) {steps_c} steps and its validation):"
    )
    print(f"  {'':<60} {'(a)':>8} {'(c)':>8} {'(c)-(a)':>8}")
    for name, a_value, c_value in rows:
        print(f"  {name:<60} {a_value:8.3f} {c_value:8.3f} {c_value - a_value:8.3f}")
    a_total = 1000 * sum(a_done[epoch][1] for epoch in range(1, epochs + 1)) / steps_a
    c_total = 1000 * sum(clock.seconds[1:]) / steps_c
    print(f"  {'total (wall clock)':<60} {a_total:8.3f} {c_total:8.3f} {c_total - a_total:8.3f}")
    print(f"\nSimpleProfiler actions of (c), ms per training step (nested actions overlap), top {args.profile_top}:")
    for action, value in sorted(ms.items(), key=lambda item: -item[1])[: args.profile_top]:
        print(f"  {action[:90]:<90} {value:8.3f}  ({len(measured[action])} calls)")

    profiler = cProfile.Profile()
    clock = Interleave(at_epoch_start=lambda epoch: profiler.enable() if epoch == 1 else None, at_end=profiler.disable)
    run_ours(compose_config(args.profile_model, 2, args.threads, tmp), tmp / "profile-cprofile", clock)
    print(
        f"\ncProfile of one (c) epoch after a warm-up ({1000 * clock.seconds[1] / (steps_c / epochs):.2f} ms per step "
        "under cProfile, which inflates Python-heavy code), by own time:"
    )
    pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile_top)
    print("by cumulative time:")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile_top)
