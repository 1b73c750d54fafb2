"""ae-predict's core: the run's own test split reproduces metrics.json, a PNG folder round-trips,
codes decode back to the reconstructions, and bad input is refused before anything is written."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from PIL import Image

from autoencoders.data.npz import load_arrays
from autoencoders.errors import USER_ERRORS
from autoencoders.evaluation import inputs as inputs_module
from autoencoders.evaluation.predict import decode, predict, recorded_thresholds, sidecar_path
from autoencoders.rundir.loading import instantiate, load_config, load_run
from autoencoders.rundir.record import read_record
from autoencoders.training.pipeline import train
from tests.conftest import FAST
from tests.helpers import digest

QUIET = ["logging.projector_points=0", "logging.images_every_n_epochs=0", "eval.nll_samples=0"]
# The conftest's finished_run (a vae, class 3 held out), trained once for this module.
VAE_RUN = ["model=vae", "model.latent_dim=4", "data.holdout_class=3"]
ALL = "codes,errors,reconstructions,flags"


def train_run(root: Path, *overrides: str) -> Path:
    with initialize_config_module("autoencoders.conf", version_base="1.3"):
        cfg = compose("train", overrides=[f"output_root={root}", "data=synthetic", *FAST, *QUIET, *overrides])
    train(cfg, run_dir=root / "run")
    return root / "run"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return train_run(tmp_path_factory.mktemp("vae"), *VAE_RUN)


@pytest.fixture(scope="module")
def predicted(run, tmp_path_factory) -> tuple[dict[str, np.ndarray], dict, list]:
    """The run's test split predicted in chunks of 100: its arrays, sidecar and progress calls."""
    out, calls = tmp_path_factory.mktemp("predicted") / "test.npz", []
    sidecar = predict(run, split="test", out=out, what=ALL, chunk_size=100, progress=lambda *call: calls.append(call))
    with np.load(out, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}, sidecar, calls


def split_tensors(run: Path) -> tuple[torch.Tensor, torch.Tensor]:
    cfg = load_config(run)
    datamodule = instantiate(cfg.data, seed=cfg.seed)
    datamodule.setup("test")
    return datamodule.pixels("test")


def test_the_test_split_reproduces_test_mse_and_the_posterior_means(run, predicted):
    arrays, sidecar, calls = predicted
    images, labels = split_tensors(run)
    record = read_record(run)
    assert arrays["errors"].astype(np.float64).mean() == pytest.approx(record["metrics"]["test/mse"], rel=1e-6)
    model = load_run(run)
    with torch.no_grad():  # by hand: the posterior mean, and E(x) = mean over pixels of (x - decode(mu))^2
        mu = model.posterior(images)[0]
        by_hand = (images - model.decode(mu)).pow(2).mean(dim=(1, 2, 3))
    np.testing.assert_allclose(arrays["codes"], mu.numpy(), atol=1e-6)
    np.testing.assert_allclose(arrays["errors"], by_hand.numpy(), rtol=1e-5)
    assert arrays["reconstructions"].shape == (len(images), 28, 28, 1)  # channels last, as data=npz files
    np.testing.assert_array_equal(arrays["labels"], labels.numpy())
    assert list(arrays["names"][:2]) == ["test[0]", "test[1]"] and len(arrays["names"]) == len(images) == 256
    assert calls == [(100, 256), (200, 256), (256, 256)]  # three chunks
    assert sidecar["checkpoint"] == str((run / "checkpoints" / "best.ckpt").resolve()) and sidecar["note"] is None


def test_flags_reproduce_the_recorded_anomaly_metrics(run, predicted):
    arrays, sidecar, _ = predicted
    metrics, labels = read_record(run)["metrics"], arrays["labels"]
    is_anomaly, errors = labels == 3, arrays["errors"]
    for p in (95, 99):
        tau = metrics[f"test/anomaly_threshold_p{p}"]
        assert sidecar["thresholds"][f"p{p}"] == tau
        flags = arrays[f"flags_p{p}"]
        np.testing.assert_array_equal(flags, errors > tau)
        true_positives = int((flags & is_anomaly).sum())
        precision = true_positives / flags.sum() if flags.any() else 0.0
        recall = true_positives / is_anomaly.sum()
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        for name, value in (("precision", precision), ("recall", recall), ("f1", f1)):
            assert metrics[f"test/anomaly_{name}_p{p}"] == pytest.approx(value, abs=1e-6), (name, p)
    assert arrays["flags_p95"].sum() >= arrays["flags_p99"].sum() and arrays["flags_p95"].any()
    # AUROC by hand (Mann-Whitney): the fraction of (anomaly, normal) pairs ranked right, ties one half.
    difference = errors[is_anomaly][:, None].astype(np.float64) - errors[~is_anomaly][None, :]
    assert metrics["test/anomaly_auroc"] == pytest.approx(((difference > 0) + 0.5 * (difference == 0)).mean(), abs=1e-9)


def write_pngs(folder: Path, images: torch.Tensor) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, image in enumerate(images):
        pixels = (image[0] * 255).round().to(torch.uint8).numpy()  # the synthetic set is uint8: exact
        paths.append(folder / f"img{index:03d}.png")
        Image.fromarray(pixels, mode="L").save(paths[-1])
    return paths


def test_a_png_folder_round_trips_read_a_chunk_at_a_time(run, predicted, tmp_path, monkeypatch):
    arrays, _, _ = predicted
    images, _ = split_tensors(run)
    paths = write_pngs(tmp_path / "pngs", images[:150])
    reads, seen = [], []
    original = inputs_module.read_image
    monkeypatch.setattr(inputs_module, "read_image", lambda path: reads.append(path) or original(path))
    sidecar = predict(
        run,
        tmp_path / "pngs",
        out=tmp_path / "out.npz",
        what=ALL,
        chunk_size=64,
        progress=lambda done, total: seen.append((done, len(reads))),
    )
    assert seen == [(64, 64), (128, 128), (150, 150)]  # the files of one chunk are read when it is its turn
    with np.load(tmp_path / "out.npz") as folder:
        assert list(folder["names"]) == [path.name for path in paths] and "labels" not in folder.files
        np.testing.assert_allclose(folder["codes"], arrays["codes"][:150], atol=1e-6)
        np.testing.assert_allclose(folder["errors"], arrays["errors"][:150], rtol=1e-5)
        np.testing.assert_array_equal(folder["flags_p95"], arrays["flags_p95"][:150])
    assert sidecar["preprocessing"]["pixels"] == "uint8 0..255 divided by 255" and sidecar["images"] == 150
    one = predict(run, paths[7], out=tmp_path / "one.npz", what="errors")  # a single image file
    assert one["input"] == f"image {paths[7]} (1 image)"
    np.testing.assert_allclose(np.load(tmp_path / "one.npz")["errors"], arrays["errors"][7:8], rtol=1e-5)


def test_codes_decode_back_to_the_reconstructions(run, predicted, tmp_path):
    arrays, _, _ = predicted
    np.savez(tmp_path / "codes.npz", codes=arrays["codes"], labels=arrays["labels"])
    sidecar = decode(run, tmp_path / "codes.npz", out=tmp_path / "images.npz", chunk_size=100)
    ((name, images, labels),) = load_arrays(tmp_path / "images.npz")  # a data=npz file again
    assert name == "images" and sidecar["images"] == 256
    np.testing.assert_allclose(images.permute(0, 2, 3, 1).numpy(), arrays["reconstructions"], atol=1e-6)
    np.testing.assert_array_equal(labels.numpy(), arrays["labels"])


@pytest.mark.parametrize("model", ["vqvae", "cvae"])
def test_vqvae_tokens_and_cvae_labels(model, tmp_path):
    run = train_run(tmp_path, f"model={model}", "model.latent_dim=8", "eval.probe=false")
    out = tmp_path / "test.npz"
    predict(run, split="test", out=out, what=ALL)
    arrays = dict(np.load(out))
    net = load_run(run)
    if model == "vqvae":  # by hand: each 4-number token's nearest codebook row
        tokens = torch.from_numpy(arrays["codes"]).reshape(len(arrays["codes"]), -1, 4)
        nearest = torch.cdist(tokens, net.quantizer.codebook.detach()[None]).argmin(-1)
        np.testing.assert_array_equal(arrays["tokens"], nearest.numpy())
        assert arrays["tokens"].shape == (256, 2)
    np.savez(tmp_path / "codes.npz", codes=arrays["codes"], **({"labels": arrays["labels"]} if model == "cvae" else {}))
    decode(run, tmp_path / "codes.npz", out=tmp_path / "images.npz")
    decoded = np.load(tmp_path / "images.npz")["images"]
    np.testing.assert_allclose(decoded, arrays["reconstructions"], atol=1e-6)
    if model == "cvae":
        write_pngs(tmp_path / "pngs", split_tensors(run)[0][:3])
        np.savez(tmp_path / "unlabelled.npz", codes=arrays["codes"])
        for call in (
            lambda: predict(run, tmp_path / "pngs", out=tmp_path / "x.npz"),
            lambda: decode(run, tmp_path / "unlabelled.npz", out=tmp_path / "x.npz"),
        ):
            with pytest.raises(USER_ERRORS, match="is conditional: it encodes and decodes every image with its class"):
                call()
        assert not (tmp_path / "x.npz").exists()


def test_resize_is_explicit_and_keeps_a_uniform_image_uniform(run, tmp_path):
    for side, folder in ((20, "small"), (28, "right")):
        (tmp_path / folder).mkdir()
        Image.fromarray(np.full((side, side), 100, dtype=np.uint8)).save(tmp_path / folder / "grey.png")
    with pytest.raises(
        USER_ERRORS, match=r"grey.png is 20×20 pixels, but the run was trained on 28×28\. Pass --resize"
    ):
        predict(run, tmp_path / "small", out=tmp_path / "small.npz")
    sidecar = predict(run, tmp_path / "small", out=tmp_path / "small.npz", resize=True)
    predict(run, tmp_path / "right", out=tmp_path / "right.npz")
    assert sidecar["preprocessing"]["resize"].startswith("to 28×28, bilinear")
    np.testing.assert_allclose(
        np.load(tmp_path / "small.npz")["errors"], np.load(tmp_path / "right.npz")["errors"], rtol=1e-5
    )


def bad_inputs(tmp_path: Path, run: Path) -> list[tuple[dict, str]]:
    """(predict's arguments, the message) for each kind of bad input."""
    for name in ("rgb", "corrupt", "truncated", "empty", "npz"):
        (tmp_path / name).mkdir()
    Image.fromarray(np.zeros((28, 28, 3), dtype=np.uint8)).save(tmp_path / "rgb" / "colour.png")
    (tmp_path / "corrupt" / "noise.png").write_bytes(b"not an image at all")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (28, 28), dtype=np.uint8)).save(tmp_path / "full.png")
    (tmp_path / "truncated" / "cut.png").write_bytes((tmp_path / "full.png").read_bytes()[:200])
    (tmp_path / "full.txt").write_bytes((tmp_path / "full.png").read_bytes())
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    np.savez(tmp_path / "npz" / "bad.npz", images=np.full((2, 28, 28), 2.0, dtype=np.float32))
    no_checkpoints = tmp_path / "no_checkpoints"
    (no_checkpoints / "checkpoints").mkdir(parents=True)
    (no_checkpoints / "config.yaml").write_bytes((run / "config.yaml").read_bytes())
    return [
        ({"source": tmp_path / "rgb"}, r"colour.png is RGB \(28×28×3\), but the run was trained on greyscale images"),
        ({"source": tmp_path / "corrupt"}, r"noise.png cannot be read as an image \(UnidentifiedImageError"),
        ({"source": tmp_path / "truncated"}, r"cut.png cannot be read as an image"),
        ({"source": tmp_path / "empty"}, r"holds no PNG or JPEG images"),
        ({"source": tmp_path / "npz" / "bad.npz"}, r"has floats from 2 to 2; float pixels must lie in \[0, 1\]"),
        ({"source": tmp_path / "nowhere"}, r"nowhere does not exist"),
        (
            {"source": tmp_path / "missing.npz"},
            r"missing.npz does not exist; give a folder of PNG or JPEG images, an \.npz",
        ),
        ({"source": tmp_path / "full.txt"}, r"full.txt is not an npz file"),
        ({"split": "test", "target": no_checkpoints}, r"has no best checkpoint .* it has no checkpoints at all"),
        (
            {"split": "test", "checkpoint": "interrupted"},
            r"has no interrupted checkpoint .* its checkpoints are best, last",
        ),
        (
            {"split": "test", "what": "codes,latents"},
            r"unknown latents; choose from codes,errors,reconstructions,flags",
        ),
        ({"split": "test", "out": tmp_path / "out" / "p.csv"}, r"must name an \.npz file"),
        ({"split": "test", "device": "nonsense"}, r"--device nonsense cannot be used here"),
    ]


def test_bad_input_gets_a_clear_error_and_writes_nothing(run, tmp_path):
    before = digest(run)
    (tmp_path / "out").mkdir()
    for arguments, message in bad_inputs(tmp_path, run):
        arguments = {"target": run, "out": tmp_path / "out" / "p.npz", **arguments}
        with pytest.raises(USER_ERRORS, match=message):
            predict(arguments.pop("target"), arguments.pop("source", None), **arguments)
        assert list((tmp_path / "out").iterdir()) == [], arguments  # no output, no sidecar, no temp file
    assert digest(run) == before


def test_a_failed_write_leaves_no_file(run, tmp_path, monkeypatch):
    def half_then_full_disk(handle, **arrays):
        handle.write(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", half_then_full_disk)
    with pytest.raises(OSError, match="No space left"):
        predict(run, split="val", out=tmp_path / "p.npz")
    assert list(tmp_path.iterdir()) == []


def test_no_flags_without_thresholds_for_that_checkpoint(run, tmp_path):
    sidecar = predict(run, split="val", out=tmp_path / "last.npz", checkpoint="last", what="errors,flags")
    assert (
        sidecar["note"].startswith("No flags:") and "--checkpoint" in sidecar["note"] and sidecar["thresholds"] is None
    )
    assert sorted(np.load(tmp_path / "last.npz").files) == ["errors", "labels", "names"]
    assert sidecar_path(tmp_path / "last.npz").is_file()
    best = run / "checkpoints" / "best.ckpt"
    saved = torch.load(best, map_location="cpu", weights_only=True)
    assert recorded_thresholds(run, best, saved)[0].keys() == {95, 99}
    # best.ckpt overwritten by later weights (another epoch): the recorded thresholds are not theirs.
    thresholds, note = recorded_thresholds(run, best, {**saved, "epoch": saved["epoch"] + 1})
    assert thresholds == {} and note.startswith("No flags:")


def test_a_run_without_anomaly_evaluation_says_why_it_has_no_flags(tmp_path):
    run = train_run(tmp_path, "model.latent_dim=2", "eval.probe=false")
    sidecar = predict(run, split="test", out=tmp_path / "p.npz")
    assert sidecar["note"].startswith("No flags: the run was trained without data.normal_classes")
    assert sorted(np.load(tmp_path / "p.npz").files) == ["codes", "errors", "labels", "names"]


@pytest.mark.slow
def test_fashionmnist_test_split_and_its_pngs_reproduce_the_record(tmp_path):
    """Real data: a vae trained two batches on FashionMNIST with class 9 held out, tested on all 10,000 test images."""
    run = train_run(
        tmp_path,
        "data=fashionmnist",
        "model=vae",
        "model.latent_dim=8",
        "data.holdout_class=9",
        "++trainer.limit_test_batches=1.0",
        "eval.probe=false",
    )
    predict(run, split="test", out=tmp_path / "test.npz", what="errors,flags", chunk_size=4096)
    arrays, record = dict(np.load(tmp_path / "test.npz")), read_record(run)
    assert len(arrays["errors"]) == 10_000
    assert arrays["errors"].astype(np.float64).mean() == pytest.approx(record["metrics"]["test/mse"], rel=1e-6)
    is_anomaly = arrays["labels"] == 9
    for p in (95, 99):
        flags = arrays[f"flags_p{p}"]
        assert (flags & is_anomaly).sum() / is_anomaly.sum() == pytest.approx(
            record["metrics"][f"test/anomaly_recall_p{p}"], abs=1e-6
        )
    write_pngs(tmp_path / "pngs", split_tensors(run)[0][:20])
    predict(run, tmp_path / "pngs", out=tmp_path / "pngs.npz", what="errors")
    np.testing.assert_allclose(np.load(tmp_path / "pngs.npz")["errors"], arrays["errors"][:20], rtol=1e-5)


def test_checkpoint_names_resolve_inside_the_run(run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    (copy / "checkpoints" / "last.ckpt").rename(copy / "checkpoints" / "interrupted.ckpt")
    sidecar = predict(copy, split="val", out=tmp_path / "p.npz", checkpoint="interrupted", what="codes")
    assert sidecar["checkpoint"] == str((copy / "checkpoints" / "interrupted.ckpt").resolve())
    with pytest.raises(USER_ERRORS, match="has no last checkpoint .* its checkpoints are best, interrupted"):
        predict(copy, split="val", out=tmp_path / "q.npz", checkpoint="last")
