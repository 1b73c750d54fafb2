"""`ae-predict` without the command line: a trained run's model on data it has not seen.

    predict(run, "images/", out="scores.npz")            codes, errors, flags of a folder of PNGs
    predict(run, split="train", what=["codes"], out=...)  a latent dataset for a downstream model
    decode(run, "codes.npz", out="images.npz")            codes back to images

Outputs (one .npz, arrays by name, row i from names[i]):
- codes (N × latent_dim, float32): the deterministic code, encode(x): the posterior mean for the
  vae and its kin, the encoder's continuous output z_e for the vqvae, which also gives `tokens`
  (N × positions, int64), the index of each token's nearest codebook vector.
- errors (N, float32): E(x), the per-pixel mean squared error of the deterministic
  reconstruction, pixels in [0, 1] (the unit of */mse, which every model logs; Sakurada & Yairi 2014's anomaly score).
- flags_p95, flags_p99 (N, bool): E(x) > tau_p, with tau_p the threshold anomaly evaluation
  recorded in metrics.json for this very checkpoint (the p-th percentile of the validation
  errors of normal images); absent, with a note, when none was recorded.
- reconstructions (N × H × W × C, float32 in [0, 1]; channels last as in data=npz files).
- labels (N, int64) when the input has them; names (N, str) always.
A JSON sidecar beside it (same name, .json) names the run, checkpoint, thresholds and preprocessing.
Both files are written atomically, after all model work: a failure leaves neither.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autoencoders.errors import ConfigError, DiskFull
from autoencoders.evaluation.anomaly import PERCENTILES
from autoencoders.evaluation.inputs import (
    RESIZE,
    Inputs,
    check_chunk_size,
    check_labels,
    check_not_read,
    check_out,
    check_shapes,
    choose_device,
    open_codes,
    open_input,
    open_split,
    pixels,
)
from autoencoders.machinery.contract import Tokenizer
from autoencoders.machinery.inference import condition, evaluating
from autoencoders.machinery.passes import per_image_mse
from autoencoders.rundir.loading import load_config, load_model, resolve
from autoencoders.rundir.record import (
    METRICS_FILE,
    command_line,
    read_record,
    timestamp,
    write_atomic,
    write_json_atomic,
)

WHAT = ("codes", "errors", "reconstructions", "flags")
DEFAULT_WHAT = ("codes", "errors", "flags")
CHUNK_SIZE = 1000
Progress = Callable[[int, int], None]  # (images done, images in all)


def predict(
    target: str | Path,
    source: str | Path | None = None,
    *,
    out: str | Path,
    split: str | None = None,
    checkpoint: str | None = None,
    what: Iterable[str] = DEFAULT_WHAT,
    resize: bool = False,
    device: str | None = None,
    chunk_size: int = CHUNK_SIZE,
    progress: Progress | None = None,
    trust: Iterable[str] = (),
) -> dict[str, Any]:
    """Run the model of `target` (a run directory or one of its checkpoints) on `source` (a folder
    of PNG/JPEG images or an .npz) or on the run's own `split`; write `out` and its JSON sidecar.
    Returns the sidecar. Every input is checked before the model runs. `trust`: modules whose classes
    the run may name beyond the shipped configs' (ae-predict --trust; rundir/trust.py)."""
    what = parse_what(what)
    out, chunk_size = check_out(out), check_chunk_size(chunk_size)
    if (source is None) == (split is None):
        raise ConfigError("Give exactly one input: a folder of images, an .npz file, or --split train|val|test.")
    run_dir, path = resolve(target, checkpoint)
    check_not_read(out, sidecar_path(out), [_file(source), path, *_run_files(run_dir)])
    cfg = load_config(run_dir, trust)
    model, saved = load_model(cfg, path, trust)
    inputs = open_split(cfg, split) if split is not None else open_input(source)
    resized = check_shapes(inputs, model.input_shape, resize)
    check_labels(inputs, model)
    thresholds, note = recorded_thresholds(run_dir, path, saved) if "flags" in what else ({}, None)
    chosen = choose_device(device)
    arrays = run_model(model.to(chosen), inputs, what, chunk_size, progress)
    for percentile, tau in thresholds.items():
        arrays[f"flags_p{percentile}"] = arrays["errors"] > tau
    if "errors" not in what:
        arrays.pop("errors", None)
    arrays["names"] = np.array(inputs.names, dtype=str)
    if inputs.labels is not None:
        arrays["labels"] = inputs.labels.numpy()
    sidecar = {
        **_about(run_dir, path, saved, cfg, chosen),
        "input": inputs.description,
        "images": len(inputs),
        "thresholds": {f"p{p}": tau for p, tau in thresholds.items()} or None,
        "note": note,
        "preprocessing": {
            "pixels": inputs.pixels,
            "resize": f"to {_size(model.input_shape)}, {RESIZE}" if resized else None,
            "precision": "float32",
            "chunk_size": chunk_size,
        },
        "arrays": _describe(arrays),
    }
    write_outputs(out, arrays, sidecar)
    return sidecar


def decode(
    target: str | Path,
    codes_file: str | Path,
    *,
    out: str | Path,
    checkpoint: str | None = None,
    device: str | None = None,
    chunk_size: int = CHUNK_SIZE,
    progress: Progress | None = None,
    trust: Iterable[str] = (),
) -> dict[str, Any]:
    """Decode the `codes` (and, for the cvae, `labels`) of `codes_file` with the run's model into
    `out`: `images` (N × H × W × C float32 in [0, 1]) and `labels` if given, a data=npz file."""
    out, chunk_size = check_out(out), check_chunk_size(chunk_size)
    run_dir, path = resolve(target, checkpoint)
    check_not_read(out, sidecar_path(out), [Path(codes_file).expanduser(), path, *_run_files(run_dir)])
    cfg = load_config(run_dir, trust)
    model, saved = load_model(cfg, path, trust)
    codes, labels = open_codes(codes_file, model)
    chosen = choose_device(device)
    model = model.to(chosen)
    channels, height, width = model.input_shape
    images = np.empty((len(codes), height, width, channels), dtype=np.float32)
    with evaluating(model):
        for start in range(0, len(codes), chunk_size):
            stop = min(start + chunk_size, len(codes))
            z = codes[start:stop].to(device=model.device, dtype=model.dtype)
            given = condition(model, labels[start:stop] if labels is not None else None)
            images[start:stop] = model.decode(z, *given).float().permute(0, 2, 3, 1).cpu().numpy()
            if progress is not None:
                progress(stop, len(codes))
    arrays = {"images": images, **({"labels": labels.numpy()} if labels is not None else {})}
    sidecar = {
        **_about(run_dir, path, saved, cfg, chosen),
        "input": f"codes file {Path(codes_file).expanduser()}",
        "images": len(codes),
        "arrays": _describe(arrays),
    }
    write_outputs(out, arrays, sidecar)
    return sidecar


def run_model(
    model: Any, inputs: Inputs, what: tuple[str, ...], chunk_size: int, progress: Progress | None = None
) -> dict[str, np.ndarray]:
    """codes (and tokens), errors, reconstructions of `inputs`, `chunk_size` images at a time: the
    input is read per chunk and the outputs are filled in place, so memory holds one chunk of
    images beside the outputs asked for. Errors are computed whenever flags are asked for."""
    channels, height, width = model.input_shape
    count, decoding = len(inputs), bool({"errors", "reconstructions", "flags"} & set(what))
    arrays = {"codes": np.empty((count, model.hparams.latent_dim), dtype=np.float32)}
    tokens = isinstance(model, Tokenizer)  # the vqvae's discrete code
    if tokens:
        arrays["tokens"] = np.empty((count, model.positions), dtype=np.int64)
    if decoding:
        arrays["errors"] = np.empty(count, dtype=np.float32)
    if "reconstructions" in what:
        arrays["reconstructions"] = np.empty((count, height, width, channels), dtype=np.float32)
    with evaluating(model):
        for start in range(0, count, chunk_size):
            stop = min(start + chunk_size, count)
            x = pixels(inputs.read(start, stop), (height, width)).to(device=model.device, dtype=model.dtype)
            given = condition(model, inputs.labels[start:stop] if inputs.labels is not None else None)
            z = model.encode(x, *given)
            arrays["codes"][start:stop] = z.float().cpu().numpy()
            if tokens:
                arrays["tokens"][start:stop] = model.token_indices(z).cpu().numpy()
            if decoding:
                x_hat = model.decode(z, *given)  # = model.reconstruct(x, *given), without encoding twice
                arrays["errors"][start:stop] = per_image_mse(x_hat, x).cpu().numpy()
                if "reconstructions" in arrays:
                    arrays["reconstructions"][start:stop] = x_hat.float().permute(0, 2, 3, 1).cpu().numpy()
            if progress is not None:
                progress(stop, count)
    if "codes" not in what:
        arrays = {name: value for name, value in arrays.items() if name not in ("codes", "tokens")}
    return arrays


def recorded_thresholds(run_dir: Path, checkpoint: Path, saved: dict[str, Any]) -> tuple[dict[int, float], str | None]:
    """The anomaly thresholds metrics.json recorded for this checkpoint file with these weights
    (its epoch and step): from training's test of the tested checkpoint, or from ae-eval.
    ({}, a note saying why) when there are none."""
    record = read_record(run_dir) if (run_dir / METRICS_FILE).is_file() else {}
    tested, evaluated = record.get("tested") or {}, record.get("eval") or {}
    candidates = [
        (evaluated.get("checkpoint"), evaluated.get("epoch"), evaluated.get("global_step"), evaluated.get("metrics")),
        (tested.get("checkpoint"), tested.get("epoch"), tested.get("step"), record.get("metrics")),
    ]
    for recorded, epoch, step, metrics in candidates:
        if recorded is None or not metrics or (run_dir / recorded).resolve() != checkpoint.resolve():
            continue
        if (epoch, step) != (saved.get("epoch"), saved.get("global_step")):
            continue  # the file was overwritten since (a resumed run's last.ckpt): its thresholds are another model's
        values = {p: metrics.get(f"test/anomaly_threshold_p{p}") for p in PERCENTILES}
        if all(value is not None for value in values.values()):
            return {p: float(value) for p, value in values.items()}, None
    if "normal_classes" not in record.get("data", {}):
        return {}, (
            "No flags: the run was trained without data.normal_classes or data.holdout_class, so it has no "
            "anomaly thresholds (the detector is fitted on normal classes only)."
        )
    return {}, (
        f"No flags: {run_dir / METRICS_FILE} records no anomaly thresholds for {checkpoint.name} at epoch "
        f"{saved.get('epoch')} (training records them for its tested checkpoint); `ae-eval {run_dir} "
        f"--checkpoint {checkpoint}` records them for this one."
    )


# What to do when the disk is full: there is no run to resume (errors.DiskFull's default says that).
DISK_FULL = "nothing was written. Free some space there, or choose an --out on another disk, then run ae-predict again."


def write_outputs(out: Path, arrays: dict[str, np.ndarray], sidecar: dict[str, Any]) -> None:
    """`out` (.npz) and its sidecar (.json), each atomically; when the sidecar fails, `out` goes too."""
    try:
        write_atomic(out, lambda handle: np.savez(handle, **arrays), binary=True)
        try:
            write_json_atomic(sidecar_path(out), sidecar)
        except BaseException:
            out.unlink(missing_ok=True)
            raise
    except DiskFull as full:
        raise DiskFull(full.path, full.free, DISK_FULL) from None


def sidecar_path(out: Path) -> Path:
    return Path(out).with_suffix(".json")


def _file(source: str | Path | None) -> Path | None:
    return Path(source).expanduser() if source is not None and Path(source).expanduser().is_file() else None


def _run_files(run_dir: Path) -> list[Path]:
    """The files of the run that predicting reads or that record it: never an output."""
    return [run_dir / METRICS_FILE, run_dir / "config.yaml"]


def parse_what(what: Iterable[str] | str) -> tuple[str, ...]:
    """The arrays asked for, from "codes,errors" or a list; an unknown name is refused."""
    names = [name.strip() for name in (what.split(",") if isinstance(what, str) else what) if name.strip()]
    unknown = sorted(set(names) - set(WHAT))
    if unknown or not names:
        raise ConfigError(
            f"--what {','.join(names)!s} is not allowed{': unknown ' + ', '.join(unknown) if unknown else ''}; "
            f"choose from {','.join(WHAT)} (comma-separated, default {','.join(DEFAULT_WHAT)})."
        )
    return tuple(name for name in WHAT if name in names)


def _about(run_dir: Path, path: Path, saved: dict[str, Any], cfg: Any, device: torch.device) -> dict[str, Any]:
    """What the sidecar says about where the predictions came from."""
    return {
        "run": str(run_dir.resolve()),
        "checkpoint": str(path.resolve()),
        "epoch": saved.get("epoch"),
        "global_step": saved.get("global_step"),
        "model": cfg.model._target_,
        "data": cfg.data.name,
        "device": str(device),
        "command": command_line(),
        "at": timestamp(),
    }


def _describe(arrays: dict[str, np.ndarray]) -> dict[str, str]:
    return {name: f"{'×'.join(map(str, value.shape)) or 'scalar'} {value.dtype}" for name, value in arrays.items()}


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}×{shape[2]}" if len(shape) == 3 and math.prod(shape) else str(shape)
