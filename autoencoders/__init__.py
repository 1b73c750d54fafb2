"""autoencoders: a configurable experiment runner for autoencoder research.

`ae-train` (autoencoders.cli.train:main) composes conf/ with Hydra and trains with Lightning.
"""

__version__ = "0.1.0"


def load_run(run_dir, checkpoint=None, trust=()):  # noqa: ANN001, ANN201 - see autoencoders.rundir.loading.load_run
    """The trained model of a run directory (best checkpoint; checkpoint="last" or a path), in eval
    mode, with encode, decode and (vae) sample; `trust=["mymodule"]` allows classes of your own
    module that the run names (docs/run-directory.md). Imported lazily: `import autoencoders` stays light."""
    from autoencoders.rundir.loading import load_run as _load_run

    return _load_run(run_dir, checkpoint, trust)
