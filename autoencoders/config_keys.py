"""Every config key, declared once: its kind, default, range or choices, and one line of doc.

The checks built on these declarations are in schema.py; the YAML files under conf/ hold the
same defaults, and tests/test_declarations.py holds them, the constructors' defaults and
docs/config.md (rendered by `reference_table`) equal to RULES. The names the code maps to
implementations (nets, losses, schedules, corruptions, penalties) live here as plain tuples.
This module imports nothing heavy, so `ae-train --help` stays fast.
"""

from __future__ import annotations

from typing import Any

from autoencoders.rules import Rule, choice, count, fraction, key, non_negative, plain_text, positive_int

# The network families conf/model/net/ ships (autoencoders/nets/); their keys are declared below as
# net.<family>.<key>. A model.net mapping with another _target_ is the user's own class, its keys free.
NETS = ("mlp", "conv", "burgess", "residual")
# Names the code maps to implementations (nets/mlp.py, losses/reconstruction.py, machinery/optim.py,
# models/dae.py, models/sparse.py, losses/total_correlation.py, nets/quantizer.py, machinery/priors.py).
NET_ACTIVATIONS = ("relu", "tanh", "elu", "leaky_relu")
RECONSTRUCTION_LOSSES = ("mse", "bce")
LR_SCHEDULES = ("constant", "cosine")
CORRUPTIONS = ("gaussian", "mask")
SPARSITY_PENALTIES = ("l1", "kl")
CODEBOOK_UPDATES = ("ema", "loss")
TC_ESTIMATORS = ("mws", "mss")
PRIORS = ("normal", "laplace")
BINARIZATIONS = ("none", "fixed", "dynamic")  # data/batches.py
DATASETS = ("fashionmnist", "mnist", "synthetic", "npz", "shapes", "dsprites")  # data/sources.py, data/shapes.py
WANDB_MODES = ("offline", "online", "disabled")  # views/trackers.py
# The loggers conf/logger/ ships (views/loggers.py, views/trackers.py); their keys are declared
# below. Other entries of the logger block (a user's own _target_) are a free mapping.
LOGGERS = ("csv", "mlflow", "wandb")


# Every config key, once. The YAML files under conf/ hold the same defaults (a test compares
# them, and the constructors' defaults); docs/config.md is this table (a test renders it).
RULES: dict[str, Rule] = {
    "seed": count(42, "seeds weights, data order and noise (the validation split has data.split_seed)"),
    "torch_threads": key(
        "int",
        None,
        "torch's intra-op threads, at most the machine's cores; null: the cores but one, per parallel job, at most 4",
        low=1,
        nullable=True,
    ),
    "optimized_metric": key("str", None, "set by search sweepers: the metric each job returns", nullable=True),
    "compile": key(
        "bool", False, "compile the encoder and decoder with torch.compile (docs/scaling.md: slower on CPUs, measured)"
    ),
    "output_root": key("str", "outputs", "where runs/ and sweeps/ are written"),
    # model: the keys every model shares (conf/shared/model.yaml), then each model's own
    "model.net": key(
        "net",
        "mlp",
        "the encoder/decoder network: model/net=<family>, or your own class (docs/models.md)",
        choices=NETS,
    ),
    "model.latent_dim": positive_int(32, "size of the code (the VQ-VAE: numbers per image before quantizing)"),
    "model.lr": key("float", 1e-3, "Adam's peak learning rate", low=0, low_open=True),
    "model.weight_decay": non_negative(0.0, "Adam's L2 weight decay"),
    "model.loss": choice(
        "mse", "reconstruction loss: per-pixel mse, or bce (Bernoulli for the VAEs)", RECONSTRUCTION_LOSSES
    ),
    "model.lr_schedule": choice("constant", "constant, or cosine decay to 0 over all training steps", LR_SCHEDULES),
    "model.beta": non_negative(1.0, "vae: weight of the KL term; tcvae: of the total correlation"),
    "model.kl_warmup_epochs": non_negative(0.0, "vae: beta ramps from 0 over this many epochs; 0 = off"),
    "model.free_bits": non_negative(0.0, "vae: floor in nats on each dimension's batch-mean KL; 0 = off"),
    "model.prior": choice(
        "normal", "vae, tcvae, iwae, cvae: p(z), N(0, I) or Laplace(0, 1) per dimension; others: normal only", PRIORS
    ),
    "model.noise": choice("gaussian", "dae: gaussian noise or a pixel mask", CORRUPTIONS),
    "model.noise_std": fraction(0.3, "dae: std of the gaussian noise"),
    "model.mask_prob": fraction(0.3, "dae: probability that a pixel is zeroed"),
    "model.sparsity": choice("kl", "sparse: kl (sigmoid code) or l1 (ReLU code) penalty", SPARSITY_PENALTIES),
    "model.sparsity_target": key(
        "float", 0.05, "sparse: target mean activation of the kl penalty", low=0, high=1, low_open=True, high_open=True
    ),
    "model.sparsity_weight": non_negative(1e-2, "sparse: weight of the sparsity penalty"),
    "model.decoder_weight_decay": non_negative(1e-4, "sparse: extra L2 on the decoder's weight matrices"),
    "model.contractive_weight": non_negative(1e-3, "contractive: weight of ||J_f(x)||_F^2"),
    "model.jacobian_projections": count(0, "contractive: 0 = exact Jacobian norm; k = k random projections"),
    "model.embedding_dim": positive_int(4, "vqvae: numbers per token; must divide model.latent_dim"),
    "model.codebook_size": positive_int(512, "vqvae: codebook vectors"),
    "model.commitment": non_negative(0.25, "vqvae: weight of the commitment term (the paper's beta)"),
    "model.codebook_update": choice(
        "ema", "vqvae: ema moving averages, or loss (a trained codebook)", CODEBOOK_UPDATES
    ),
    "model.tc_estimator": choice("mws", "tcvae: minibatch-weighted (mws) or stratified (mss) sampling", TC_ESTIMATORS),
    "model.ema_decay": key(
        "float", 0.99, "vqvae: decay of the codebook's moving averages", low=0, high=1, high_open=True
    ),
    "model.restart_dead_codes": key("bool", True, "vqvae: restart unused codes at encoder outputs each epoch"),
    "model.discriminator_width": positive_int(
        1000, "aae, factorvae: units in each of the discriminator's hidden layers (aae 2, factorvae 6)"
    ),
    "model.adversarial_lr": key(
        "float",
        1e-4,
        "aae, factorvae: Adam's learning rate of the discriminator",
        low=0,
        low_open=True,
    ),
    "model.generator_lr": key(
        "float", 1e-3, "aae: Adam's learning rate of the generator phase (the encoder)", low=0, low_open=True
    ),
    "model.gamma": non_negative(40.0, "factorvae: the paper's gamma, weight of the total correlation estimate"),
    "model.mmd_weight": non_negative(10.0, "wae: the paper's lambda on the MMD, against a per-image squared error"),
    "model.samples": positive_int(5, "iwae: importance samples k per image in the training bound"),
    "model.top_latent_dim": positive_int(16, "hvae: size of the top level z2 (model.latent_dim is z1's)"),
    # model.net: each shipped family's keys (conf/model/net/<family>.yaml); burgess has none
    "net.mlp.hidden": key(
        "ints", [256, 64], "mlp: widths of the hidden layers, from the image side (the decoder reverses them)"
    ),
    "net.mlp.activation": choice("relu", "mlp: the activation between layers", NET_ACTIVATIONS),
    "net.conv.channels": key("ints", [16, 32], "conv: channels of each convolution, from the image side", low=1),
    "net.conv.kernel": positive_int(3, "conv: kernel side (padding (kernel - 1) // 2)"),
    "net.conv.stride": positive_int(2, "conv: stride of each convolution; image sides must divide by stride ** stages"),
    "net.conv.batch_norm": key("bool", True, "conv: batch norm after each convolution (not the decoder's last)"),
    "net.conv.dense": key("ints", [], "conv: hidden dense layers between the features and the code"),
    "net.residual.channels": key("ints", [32, 64, 128], "residual: channels of each stride-2 stage", low=1),
    "net.residual.blocks": count(1, "residual: residual blocks per stage"),
    "net.residual.dense": key("ints", [], "residual: hidden dense layers between the features and the code"),
    # set by the code from the data, never by a config (rundir.checkpoints.FROM_DATA)
    "model.num_classes": positive_int(None, "cvae: classes of the data (set from the data)"),
    "model.dataset_size": positive_int(None, "tcvae: training-set size (set from the data)"),
    # data
    "data.name": choice("fashionmnist", "the dataset", DATASETS),
    "data.root": key("str", "~/.cache/autoencoders", "where datasets are looked for and downloaded to"),
    "data.batch_size": positive_int(256, "images per batch (per process under DDP)"),
    "data.val_size": positive_int(5000, "training images held out for validation, chosen by data.split_seed"),
    "data.split_seed": count(0, "seed of the validation split, independent of `seed`"),
    "data.download": key("bool", True, "let torchvision download a dataset that is not on disk"),
    "data.normal_classes": key("classes", None, "anomaly detection: the classes train and val keep", nullable=True),
    "data.holdout_class": key(
        "classes", None, "anomaly detection: the class(es) left out of train and val", nullable=True
    ),
    "data.path": key("str", None, "data=npz, data=dsprites: the .npz file", nullable=True),
    "data.test_size": positive_int(1000, "npz without test_images, shapes, dsprites: images held out for testing"),
    "data.subsample": positive_int(
        None, "shapes, dsprites: training + validation images drawn from the grid; null = all", nullable=True
    ),
    "data.binarize": choice(
        "none",
        "x ~ Bernoulli(pixel): fixed (each split drawn once), dynamic (each training batch drawn afresh)",
        BINARIZATIONS,
    ),
    "data.resolution": key("int", 64, "shapes: image side in pixels (a multiple of 4 for model/net=conv)", low=8),
    "data.scales": positive_int(6, "shapes: levels of the scale factor"),
    "data.orientations": positive_int(40, "shapes: levels of the orientation factor, over 2 pi"),
    "data.positions": positive_int(32, "shapes: levels of each position factor (x and y)"),
    # trainer: a free mapping of lightning.Trainer arguments; these are the ones we check
    "trainer.max_epochs": positive_int(20, "epochs to train"),
    "trainer.log_every_n_steps": positive_int(50, "steps between logged training losses"),
    "trainer.check_val_every_n_epoch": positive_int(1, "epochs between validations"),
    "trainer.limit_train_batches": key("batches", 1.0, "training batches per epoch", low_open=True),
    "trainer.max_steps": key("int", -1, "stop after this many steps; -1: no limit", low=-1),
    "trainer.limit_val_batches": key("batches", 1.0, "validation batches per epoch"),
    "trainer.limit_test_batches": key("batches", 1.0, "test batches"),
    # logging: what goes to TensorBoard (docs/tensorboard.md)
    "logging.images_every_n_epochs": count(1, "reconstructions (and prior samples) every this many epochs; 0 = none"),
    "logging.n_images": positive_int(16, "images in each grid"),
    "logging.latents_every_n_epochs": count(0, "latent views every this many epochs; 0 = only after testing"),
    "logging.projector_points": count(2000, "test codes in the projector and scatter plot; 0 = no latent views"),
    # eval: evaluation after testing and in ae-eval (docs/evaluation.md)
    "eval.probe": key("bool", True, "logistic regression on frozen codes -> test/probe_acc"),
    "eval.probe_train_size": key(
        "int", 10_000, "training codes the probe is fitted on; null = all", low=1, nullable=True
    ),
    "eval.anomaly": key(
        "str", "auto", "auto: when data.normal_classes or data.holdout_class is set", choices=("auto", True, False)
    ),
    "eval.anomaly_images": count(16, "worst-reconstructed test images in anomaly/worst; 0 = none"),
    "eval.nll_samples": count(100, "vae: importance samples per image for test/nll; 0 = off"),
    "eval.nll_images": key("int", 1000, "test images (a fixed subset) for test/nll; null = all", low=1, nullable=True),
    "eval.class_consistency": key("bool", True, "cvae: a pixel classifier checks the class of samples"),
    # on data with factors (shapes, dsprites, npz with factors): docs/disentanglement.md
    "eval.disentanglement": key("bool", True, "MIG, DCI, SAP and FactorVAE score on data with known factors"),
    "eval.factor_codes": key(
        "int", 10_000, "training codes MIG, SAP, DCI and the FactorVAE score use; null = all", low=2, nullable=True
    ),
    "eval.dci_codes": key(
        "int", 5000, "of those, the codes DCI's random forests are fitted on; null = all", low=2, nullable=True
    ),
    "eval.factor_test_codes": key(
        "int", 5000, "test codes DCI's informativeness (accuracy) is scored on; null = all", low=2, nullable=True
    ),
    "eval.factorvae_votes": positive_int(10_000, "FactorVAE score: training votes (and half as many held-out votes)"),
    "eval.factorvae_batch": key("int", 64, "FactorVAE score: codes per vote, one factor fixed", low=2),
    "eval.sample_quality": key(
        "str",
        "auto",
        "test/fd, precision, recall, recon_fd; auto: on data with factors "
        "(true trains a reference network once per dataset)",
        choices=("auto", True, False),
    ),
    "eval.fd_images": key(
        "int", 10_000, "test images (and as many samples) for test/fd and kin; null = all", low=10, nullable=True
    ),
    "eval.inception_weights": key(
        "str",
        None,
        "a local torch-fidelity InceptionV3 weights file -> test/inception_fid (never downloaded); null = off",
        nullable=True,
    ),
    # logger: loggers beside TensorBoard, chosen with logger=csv / mlflow / wandb / [csv,mlflow] (docs/loggers.md)
    "logger.mlflow.tracking_uri": key(
        "str",
        None,
        "MLflow server or store, e.g. http://host:5000; null = sqlite:///<output_root>/mlflow.db",
        nullable=True,
    ),
    "logger.mlflow.experiment_name": key(
        "str", None, "MLflow experiment; null = the sweep directory's name (single runs: runs)", nullable=True
    ),
    "logger.wandb.mode": choice("offline", "online only when set explicitly; disabled = no W&B files", WANDB_MODES),
    "logger.wandb.project": key("str", "autoencoders", "W&B project"),
    "logger.wandb.entity": key("str", None, "W&B user or team; null = your default", nullable=True),
}

# Sections whose every key must be declared above; `trainer` is a free mapping of Trainer arguments.
DECLARED_SECTIONS = ("model", "data", "eval", "logging")


def default_of(name: str) -> Any:
    """The declared default of a key, e.g. default_of("eval.probe")."""
    return RULES[name].default


def reference_table(section: str) -> str:
    """The Markdown table of one section's keys, as docs/config.md shows it."""
    rows = ["| key | default | allowed | what it does |", "|---|---|---|---|"]
    for name, rule in RULES.items():
        if name.split(".", 1)[0] == section or (section == "" and "." not in name):
            default = "null" if rule.default is None else plain_text(rule.default)
            rows.append(f"| `{name}` | `{default}` | {rule.allowed()} | {rule.doc} |")
    return "\n".join(rows)
