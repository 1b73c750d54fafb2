"""The models wing: the objectives, one module each, and nothing else. Each says how it encodes,
decodes and which loss terms it has; the loop they share is in autoencoders/machinery/, their
networks in autoencoders/nets/, the loss maths in autoencoders/losses/.

autoencoder.py  the plain autoencoder (model=mlp, model=conv)
dae.py          the denoising autoencoder
sparse.py       the sparse autoencoder
contractive.py  the contractive autoencoder
vae.py          the VAE (and beta-VAE)
cvae.py         the conditional VAE
tcvae.py        the beta-TCVAE
iwae.py         the importance-weighted autoencoder
hvae.py         the two-level hierarchical VAE
factorvae.py    FactorVAE
vqvae.py        the VQ-VAE
aae.py          the adversarial autoencoder
wae.py          the Wasserstein autoencoder (WAE-MMD)
"""
