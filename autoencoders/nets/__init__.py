"""The networks wing: encoder and decoder families and the parts models plug into them.

mlp.py            the multilayer perceptron encoder and decoder (model.net=mlp)
conv.py           the two-stage convolutional encoder and decoder (model.net=conv)
families.py       model.net's names -> (encoder, decoder), and build_nets, sized from the data
discriminator.py  the adversarial models' code discriminator
quantizer.py      the VQ-VAE's codebook
"""
