"""autoencoders: a configurable experiment runner for autoencoder research.

`ae-train` (autoencoders.train:main) composes conf/ with Hydra and trains with Lightning.
"""

__version__ = "0.1.0"
