"""`ae-predict`: a trained run's model on new data (autoencoders.evaluation.predict); docs/predict.md.

    ae-predict RUN INPUT --out FILE.npz [--checkpoint best|last|interrupted|PATH] [--what codes,errors,...] [--trust MODULE]
    ae-predict RUN --split train --what codes --out latents.npz
    ae-predict RUN --decode codes.npz --out images.npz

Errors end as one paragraph and exit code 1 (the traceback only with HYDRA_FULL_ERROR=1); a bad
option exits with 2. Nothing is written unless everything succeeded.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from autoencoders.cli import quick_exit
from autoencoders.errors import describe, full_error_requested

WHAT = "codes,errors,reconstructions,flags"  # autoencoders.evaluation.predict.WHAT, kept here so --help stays light


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ae-predict",
        description="Use a trained run's model on data: codes (the posterior mean for probabilistic models; the "
        "vqvae's token indices too), per-image reconstruction errors (per-pixel MSE), reconstructions, and anomaly "
        "flags at the p95/p99 thresholds the run recorded. Writes FILE.npz and a FILE.json sidecar, atomically.",
    )
    parser.add_argument("run", help="a run directory (or one of its checkpoints/*.ckpt)")
    parser.add_argument(
        "input", nargs="?", help="a folder of PNG/JPEG images, one such image, or an .npz file (data=npz format)"
    )
    parser.add_argument("--split", choices=("train", "val", "test"), help="the run's own data instead of INPUT")
    parser.add_argument(
        "--decode",
        metavar="CODES.npz",
        help="decode the 'codes' (and 'labels', for the cvae) of "
        "an ae-predict output back into images, instead of INPUT",
    )
    parser.add_argument("--out", required=True, metavar="FILE.npz", help="the .npz to write (its sidecar: FILE.json)")
    parser.add_argument("--checkpoint", help="best (default), last, interrupted, or a checkpoint path")
    parser.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="MODULE",
        help="allow the run to name classes of MODULE beyond the shipped configs' (your own model or data); "
        "repeatable. Without it, a run naming other code is refused and nothing of it is imported",
    )
    parser.add_argument(
        "--what",
        default="codes,errors,flags",
        metavar="NAMES",
        help=f"comma-separated arrays among {WHAT} (default: codes,errors,flags)",
    )
    parser.add_argument(
        "--resize",
        action="store_true",
        help="scale images of another size to the run's (bilinear, "
        "antialiased); without it a size mismatch is an error",
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:1, mps ... (default: the accelerator if there is one)")
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=1000,
        metavar="N",
        help="images read and run through the model at once (default 1000)",
    )
    args = parser.parse_args(argv)
    given = [name for name in ("input", "split", "decode") if getattr(args, name) is not None]
    if len(given) != 1:
        parser.error("give exactly one of INPUT, --split or --decode" + (f" (got {', '.join(given)})" if given else ""))
    return args


def main(argv: list[str] | None = None) -> None:
    """Console entry point of `ae-predict`."""
    quick_exit()
    args = parse_args(argv)
    from autoencoders.console import log_to_console

    log_to_console()
    try:
        sidecar = _run(args)
    except Exception as error:  # noqa: BLE001 - every failure ends as one paragraph and exit code 1
        full = full_error_requested()
        if full:
            traceback.print_exc()
        print(
            f"ae-predict: {describe(error)}" + ("" if full else " (HYDRA_FULL_ERROR=1 shows the traceback)"),
            file=sys.stderr,
        )
        sys.exit(1)
    if sidecar.get("note"):
        print(f"ae-predict: {sidecar['note']}", file=sys.stderr)
    arrays = ", ".join(f"{name} ({shape})" for name, shape in sidecar["arrays"].items())
    print(
        f"ae-predict: {sidecar['input']} with {sidecar['checkpoint']} "
        f"(epoch {sidecar['epoch']}) -> {args.out}: {arrays}"
    )


def _run(args: argparse.Namespace) -> dict[str, Any]:
    from autoencoders.evaluation.predict import decode, predict

    with _progress_bar() as progress:
        if args.decode is not None:
            return decode(
                args.run,
                args.decode,
                out=args.out,
                checkpoint=args.checkpoint,
                device=args.device,
                chunk_size=args.chunk_size,
                progress=progress,
                trust=args.trust,
            )
        return predict(
            args.run,
            args.input,
            out=args.out,
            split=args.split,
            checkpoint=args.checkpoint,
            what=args.what,
            resize=args.resize,
            device=args.device,
            chunk_size=args.chunk_size,
            progress=progress,
            trust=args.trust,
        )


@contextmanager
def _progress_bar() -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr when it is a terminal; a callback that shows nothing otherwise."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("ae-predict", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


if __name__ == "__main__":
    main()
