"""Views of the latent space in TensorBoard: projector, 2-D scatter, interpolation, traversal.

All four start from the codes of one fixed subset of the test set, computed once per call.
They cost far more than the per-epoch image grids (~15 ms): on FashionMNIST with 2,000 codes
and one CPU thread, ~0.9 s the first time (sprite PNG 0.25 s, written once; matplotlib and
scikit-learn imports) and ~0.3 s after that (mostly drawing the scatter plot). So they run
after testing and, only when asked, every `every_n_epochs` validation epochs.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from urllib.parse import quote

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from autoencoders.machinery.inference import condition, evaluating, to_module
from autoencoders.machinery.passes import SplitPasses, passes_of
from autoencoders.views.images import log_image
from autoencoders.views.loggers import log_grid
from autoencoders.views.tensorboard import epoch_step, grid, is_due, tensorboard

log = logging.getLogger(__name__)
PROJECTOR_TAG = "latent/test_codes"
INTERPOLATION_PAIRS = 4
INTERPOLATION_STEPS = 8
TRAVERSAL_DIMS = 8
TRAVERSAL_SIGMAS = (-3, -2, -1, 0, 1, 2, 3)


def scatter_image(codes: Tensor, labels: Tensor, class_names: list[str]) -> np.ndarray:
    """(H, W, 3) uint8 plot of the codes in 2-D (PCA when there are more dimensions), by class."""
    # Figure + FigureCanvasAgg directly, not pyplot: no global state, no GUI backend.
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    codes_np, labels_np = codes.numpy(), labels.numpy()
    if codes_np.shape[1] > 2 and len(codes_np) < 2:  # logging.projector_points=1: no plane to fit, two coordinates
        points, axis_labels, title = codes_np[:, :2], ("z1", "z2"), f"Test code, 2 of {codes_np.shape[1]} dimensions"
    elif codes_np.shape[1] > 2:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=0)
        points = pca.fit_transform(codes_np)
        ratios = pca.explained_variance_ratio_
        axis_labels = (f"PC1 ({ratios[0]:.0%} of variance)", f"PC2 ({ratios[1]:.0%})")
        title = f"Test codes, PCA of {codes_np.shape[1]} dimensions"
    elif codes_np.shape[1] == 2:
        points, axis_labels, title = codes_np, ("z1", "z2"), "Test codes"
    else:  # one dimension: spread the classes over the y axis
        points = np.stack([codes_np[:, 0], labels_np.astype(np.float32)], axis=1)
        axis_labels, title = ("z1", "class"), "Test codes"
    figure = Figure(figsize=(6, 5), dpi=80)
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    colours = colormaps["tab10" if len(class_names) <= 10 else "tab20"]
    for index, name in enumerate(class_names):
        mask = labels_np == index
        if mask.any():
            axes.scatter(points[mask, 0], points[mask, 1], s=4, alpha=0.6, color=colours(index % colours.N), label=name)
    axes.set(xlabel=axis_labels[0], ylabel=axis_labels[1], title=title)
    axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, markerscale=3, frameon=False)
    figure.subplots_adjust(left=0.12, right=0.74, bottom=0.11, top=0.92)  # tight_layout: +100 ms a call
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


class ProjectorFiles:
    """The Embedding Projector's files in a run directory, as SummaryWriter.add_embedding writes
    them (projector_config.pbtxt; <step>/<tag>/tensors.tsv, metadata.tsv, sprite.png), except
    that the sprite is written once and shared: the thumbnails never change, and add_embedding
    re-encoding them took 0.9 s of its 0.93 s per call for 2,000 FashionMNIST images."""

    def __init__(
        self, log_dir: str | Path, tag: str, purge_from: int | None = None, earlier: Path | None = None
    ) -> None:
        from google.protobuf import text_format
        from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

        self.log_dir, self.tag = Path(log_dir), tag
        self.config = ProjectorConfig()
        self.sprite: str | None = None
        # A resumed run keeps its earlier epochs: from its own folder, or from the run directory
        # (`earlier`) when this session writes elsewhere until it completes (rundir/attempt.py).
        folders = [self.log_dir, *([Path(earlier)] if earlier is not None else [])]
        found = [
            folder / "projector_config.pbtxt" for folder in folders if (folder / "projector_config.pbtxt").is_file()
        ]
        if found:
            text_format.Parse(found[0].read_text(), self.config)
            if purge_from is not None:  # ...but not the steps it repeats, like TensorBoard's purge_step
                kept = [e for e in self.config.embeddings if int(e.tensor_name.rsplit(":", 1)[1]) < purge_from]
                del self.config.embeddings[:]
                self.config.embeddings.extend(kept)
            sprites = [
                e.sprite.image_path
                for e in self.config.embeddings
                if any((folder / e.sprite.image_path).is_file() for folder in folders)
            ]
            self.sprite = sprites[0] if sprites else None

    def add(self, codes: Tensor, metadata: list[str] | None, images: Tensor, step: int) -> None:
        """One embedding at `step`; `metadata` (class names) is None for data without labels."""
        from google.protobuf import text_format

        folder = f"{step:05d}/{quote(self.tag, safe='')}"  # add_embedding's layout
        (self.log_dir / folder).mkdir(parents=True, exist_ok=True)
        np.savetxt(self.log_dir / folder / "tensors.tsv", codes.numpy(), fmt="%.6g", delimiter="\t")
        if metadata is not None:
            (self.log_dir / folder / "metadata.tsv").write_text("".join(f"{name}\n" for name in metadata))
        if self.sprite is None:
            self.sprite = f"{folder}/sprite.png"
            write_sprite(images, self.log_dir / self.sprite)
        name = f"{self.tag}:{step:05d}"
        if all(embedding.tensor_name != name for embedding in self.config.embeddings):
            metadata_path = f"{folder}/metadata.tsv" if metadata is not None else ""
            embedding = self.config.embeddings.add(
                tensor_name=name, tensor_path=f"{folder}/tensors.tsv", metadata_path=metadata_path
            )
            embedding.sprite.image_path = self.sprite
            embedding.sprite.single_image_dim.extend([images.shape[-1], images.shape[-2]])  # width, height
        (self.log_dir / "projector_config.pbtxt").write_text(text_format.MessageToString(self.config))


def write_sprite(images: Tensor, path: Path) -> None:
    """Thumbnails in a square grid, row by row, as the projector expects (at most 8192 px a side)."""
    from torchvision.io import write_png
    from torchvision.utils import make_grid

    side = math.ceil(math.sqrt(len(images)))
    padded = torch.cat([images, images.new_zeros(side * side - len(images), *images.shape[1:])])
    sheet = make_grid(padded, nrow=side, padding=0)[: images.shape[1]]  # make_grid makes 1 channel 3
    # zlib level 1: the same pixels in half the time of the default 6, for an 8% larger file
    # (2,000 FashionMNIST thumbnails: 0.04 s and 0.90 MB instead of 0.085 s and 0.83 MB).
    write_png((sheet * 255).round().to(torch.uint8), str(path), compression_level=1)


def first_of_class(labels: Tensor, cls: int, fallback: int) -> int:
    """Index of the first label equal to `cls` (`fallback` when the class is absent)."""
    hits = (labels == cls).nonzero()
    return int(hits[0]) if len(hits) else fallback


class LatentViews(L.Callback):
    """`latent/test_codes` (projector: codes, class names, sprite), `latent/scatter`,
    `images/interpolation` and `images/traversal`, at the epoch's last step every
    `every_n_epochs` epochs, and after testing at the final step with the tested checkpoint.
    Conditional models (the cvae) encode each image with its label; the interpolation blends the
    two labels along with the codes, and the traversal keeps the fixed code's label."""

    def __init__(self, every_n_epochs: int = 0, points: int = 2000, seed: int = 0, earlier: Path | None = None) -> None:
        self.every_n_epochs, self.points, self.seed, self.earlier = every_n_epochs, points, seed, earlier
        self.projector: ProjectorFiles | None = None
        self.train_start_step: int | None = None
        self.said_no_labels = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.train_start_step = trainer.global_step  # > 0 when resumed from a checkpoint

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and is_due(trainer.current_epoch, self.every_n_epochs):
            self.log_views(trainer, pl_module, epoch_step(trainer))

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.log_views(trainer, pl_module, trainer.global_step, shared=True)  # where test/* are logged

    def log_views(self, trainer: L.Trainer, pl_module: L.LightningModule, step: int, shared: bool = False) -> None:
        """The four views at `step`; `shared`: after testing, with the codes the evaluations share
        (machinery/passes.py); during training the weights change, so an epoch's codes are its own."""
        writer = tensorboard(trainer)
        datamodule = getattr(trainer, "datamodule", None)
        if writer is None or datamodule is None:
            return
        n = len(datamodule.labels("test"))
        # A seeded shuffle, not the first N: some test sets are ordered by class.
        subset = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))[: self.points]
        images, labels = datamodule.pixels("test", subset)
        labels = labels if datamodule.has_labels else None
        passes = passes_of(pl_module, datamodule) if shared else SplitPasses(pl_module, datamodule, whole=())
        class_names = list(datamodule.class_names)
        if labels is None and not self.said_no_labels:
            log.info(
                "The data has no class labels: latent/scatter is skipped, the projector shows the codes "
                "without class names, and images/interpolation pairs test images in a fixed order."
            )
            self.said_no_labels = True
        with evaluating(pl_module):
            codes = passes.codes("test", subset)
            if self.projector is None or self.projector.log_dir != Path(writer.get_logdir()):
                self.projector = ProjectorFiles(
                    writer.get_logdir(), PROJECTOR_TAG, purge_from=self.train_start_step, earlier=self.earlier
                )
            names = [class_names[int(label)] for label in labels] if labels is not None else None
            self.projector.add(codes, names, images, step)
            if labels is not None:
                scatter = scatter_image(codes, labels, class_names)
                writer.add_image("latent/scatter", scatter, step, dataformats="HWC")
                log_grid(
                    trainer.loggers, "latent/scatter", torch.as_tensor(scatter).permute(2, 0, 1).float() / 255, step
                )
            log_image(
                trainer, writer, "images/interpolation", self.interpolation(pl_module, images, labels, codes), step
            )
            log_image(
                trainer,
                writer,
                "images/traversal",
                self.traversal(pl_module, codes, labels[0] if labels is not None else None),
                step,
            )
        writer.flush()

    def interpolation(self, module: L.LightningModule, images: Tensor, labels: Tensor | None, codes: Tensor) -> Tensor:
        """One row per pair (classes 0->1, 2->3, ...; without labels, the subset's images 0->1,
        2->3, ...): image a, decodings along the straight line from code a to code b, image b."""
        n_classes = int(labels.max()) + 1 if labels is not None else 0  # pairs wrap around on sets with few classes
        one_hot = (
            F.one_hot(labels, max(n_classes, module.hparams.get("num_classes", 0))).float()
            if labels is not None
            else None
        )
        rows = []
        for pair in range(INTERPOLATION_PAIRS):
            a, b = 2 * pair % len(images), (2 * pair + 1) % len(images)
            if labels is not None:
                a = first_of_class(labels, 2 * pair % n_classes, a)
                b = first_of_class(labels, (2 * pair + 1) % n_classes, b)
            weights = torch.linspace(0, 1, INTERPOLATION_STEPS)[:, None]
            line = (1 - weights) * codes[a] + weights * codes[b]
            label_line = (
                (1 - weights) * one_hot[a] + weights * one_hot[b] if one_hot is not None else None
            )  # conditional models
            decoded = module.decode(to_module(line, module), *condition(module, label_line)).float().cpu()
            rows.append(torch.cat([images[a : a + 1], decoded, images[b : b + 1]]))
        return grid(torch.cat(rows), INTERPOLATION_STEPS + 2)

    def traversal(self, module: L.LightningModule, codes: Tensor, label: Tensor | None) -> Tensor:
        """One row per latent dimension, highest variance over the test codes first: one fixed
        test code (the subset's first, with its `label` for conditional models) with that
        dimension moved by -3..+3 standard deviations."""
        spread = codes.std(0) if len(codes) > 1 else torch.ones(codes.shape[1])
        dims = spread.argsort(descending=True)[:TRAVERSAL_DIMS]
        sigmas = torch.tensor(TRAVERSAL_SIGMAS, dtype=codes.dtype)
        rows = codes[0].repeat(len(dims), len(sigmas), 1)  # (dims, steps, latent_dim)
        for row, dim in enumerate(dims):
            rows[row, :, dim] += sigmas * spread[dim]
        labels = label.repeat(len(dims) * len(sigmas)) if label is not None else None
        decoded = module.decode(to_module(rows.flatten(0, 1), module), *condition(module, labels)).float().cpu()
        return grid(decoded, len(sigmas))
