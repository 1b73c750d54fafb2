"""The machinery every model shares.

contract.py   the model contract: what every model provides, its optional capabilities, their units
priors.py     the prior p(z) as a part: draws, log-density, KL from a Gaussian posterior (normal, laplace)
base.py       AutoencoderBase: the shared training loop, epoch-mean logging, optimizer
phases.py     PhasedAutoencoder: the loop of models with several optimisers (a discriminator)
optim.py      Adam, the learning-rate schedules and the optimizer step
tally.py      epoch sums and the loss watch, kept on the device
inference.py  running a trained model on in-memory tensors
passes.py     codes and reconstruction errors of a split, made once and shared after testing
"""
