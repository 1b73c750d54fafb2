"""The networks wing: the encoder and decoder families model/net chooses, and the parts models plug into them.

families.py       model.net -> an encoder and a decoder sized from the data; shape checks; sizes
mlp.py            the multilayer perceptron (model/net=mlp)
conv.py           convolutions with batch norm, and their mirror (model/net=conv)
burgess.py        Burgess et al. 2018's 64 x 64 network, as disentanglement_lib builds it (model/net=burgess)
residual.py       a small residual conv net for colour images (model/net=residual)
discriminator.py  the adversarial models' code discriminator
quantizer.py      the VQ-VAE's codebook
"""
