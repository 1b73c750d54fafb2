"""`ae-eval`: re-test a trained run's checkpoint and evaluate it (autoencoders.evaluation.finished_run).

    ae-eval <run-dir> [--checkpoint best|last|interrupted|<path>] [--trust MODULE ...] [eval.<key>=<value> ...]
    ae-eval <run-dir>/checkpoints/last.ckpt

Errors end as one paragraph and exit code 1 (the traceback only with HYDRA_FULL_ERROR=1).
"""

from __future__ import annotations

import argparse
import sys
import traceback

from autoencoders.cli import quick_exit
from autoencoders.errors import describe, full_error_requested


def main(argv: list[str] | None = None) -> None:
    """Console entry point of `ae-eval`."""
    quick_exit()
    parser = argparse.ArgumentParser(
        prog="ae-eval",
        description="Re-test a trained run's checkpoint and evaluate it (linear probe, anomaly detection, VAE "
        'test/nll); results go to <run>/metrics.json under "eval" and to TensorBoard in <run>/eval/.',
    )
    parser.add_argument("target", help="a run directory, or a checkpoint file in <run>/checkpoints/")
    parser.add_argument(
        "--checkpoint", help="best (default), last, interrupted, or a checkpoint path (with a run directory)"
    )
    parser.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="MODULE",
        help="allow the run to name classes of MODULE beyond the shipped configs' (your own model, data, "
        "loggers); repeatable. Without it, a run naming other code is refused and nothing of it is imported",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="settings for this evaluation only, e.g. eval.nll_samples=1000 eval.nll_images=null",
    )
    args = parser.parse_intermixed_args(argv)
    from autoencoders.console import log_to_console, print_metrics
    from autoencoders.evaluation.finished_run import evaluate_run

    log_to_console()
    try:
        entry = evaluate_run(args.target, args.checkpoint, args.overrides, args.trust)
    except Exception as error:  # noqa: BLE001 - every failure ends as one paragraph and exit code 1
        full = full_error_requested()
        if full:
            traceback.print_exc()
        print(
            f"ae-eval: {describe(error)}" + ("" if full else " (HYDRA_FULL_ERROR=1 shows the traceback)"),
            file=sys.stderr,
        )
        sys.exit(1)
    print_metrics(
        f"ae-eval: {entry['checkpoint']} (epoch {entry['epoch']})",
        entry["metrics"],
        f"TensorBoard: {entry['tensorboard']}",
    )


if __name__ == "__main__":
    main()
