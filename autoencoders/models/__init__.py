"""LightningModules: `base.AutoencoderBase` holds the shared loop, one file per model family."""
