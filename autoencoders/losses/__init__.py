"""The losses wing: pure loss maths, one topic a module, each function with its units.

reconstruction.py     reconstruction losses and the decoders' likelihoods (Bernoulli, fixed-sigma Gaussian)
densities.py          Gaussian and Laplace log-densities, the closed-form KLs to N(0, I) and Laplace(0, 1), free bits, the importance-weighted bound
total_correlation.py  the KL split into mutual information, total correlation and dimension-wise KL (beta-TCVAE)
penalties.py          penalties on codes: sparsity (L1, KL), the contractive Jacobian norm, the VQ-VAE's terms
matching.py           matching the codes' distribution to the prior: discriminator terms and MMD
"""
