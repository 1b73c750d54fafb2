"""The VQ-VAE: its loss against hand computation, straight-through gradients, decoding through the
quantizer, epoch usage counts, a prior that survives a checkpoint, its config check."""

import pytest
import torch
from torch import nn

from autoencoders.errors import ConfigError
from autoencoders.models.vqvae import VQVAE

SMALL = {"input_shape": [1, 8, 8], "latent_dim": 4, "embedding_dim": 2, "codebook_size": 6}
CODEBOOK = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]
# z_e of two images, two tokens each: nearest codes (0, 1) and (2, 1).
Z_E = [[0.2, -0.1, 0.7, 0.4], [0.1, 0.6, 1.2, 0.1]]
NEAREST = [[0.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0]]


class Rows(nn.Module):
    """An 'encoder' whose output is a fixed (trainable) tensor, whatever the images."""

    def __init__(self, rows: list[list[float]]) -> None:
        super().__init__()
        self.rows = nn.Parameter(torch.tensor(rows))

    def forward(self, x):
        return self.rows


class TwoPixels(nn.Module):
    """z (B, 4) -> pixels (sigmoid(z0 + z2), sigmoid(z1 - z3)) as a (B, 1, 1, 2) image."""

    def forward(self, z):
        return torch.sigmoid(torch.stack([z[:, 0] + z[:, 2], z[:, 1] - z[:, 3]], 1)).view(-1, 1, 1, 2)


def hand_model(update: str) -> VQVAE:
    model = VQVAE(
        input_shape=[1, 1, 2],
        latent_dim=4,
        embedding_dim=2,
        codebook_size=3,
        commitment=0.25,
        codebook_update=update,
        loss="mse",
    )
    model.encoder, model.decoder = Rows(Z_E), TwoPixels()
    with torch.no_grad():
        model.quantizer.codebook.copy_(torch.tensor(CODEBOOK))
        if update == "ema":
            model.quantizer.ema_sums.copy_(torch.tensor(CODEBOOK))
    return model


@pytest.mark.parametrize("update", ["ema", "loss"])
def test_vqvae_loss_equals_hand_computation(update):
    model = hand_model(update)  # training mode: the EMA moves the codebook, after the terms are computed
    images = [[0.25, 0.75], [1.0, 0.0]]
    terms, x_hat = model.loss_terms(torch.tensor(images).view(2, 1, 1, 2))

    sigmoid = lambda v: 1 / (1 + 2.718281828459045**-v)  # noqa: E731
    recon = squared = 0.0
    for z_e, z_q, pixels in zip(Z_E, NEAREST, images):
        decoded = [sigmoid(z_q[0] + z_q[2]), sigmoid(z_q[1] - z_q[3])]  # the decoder sees the codes
        recon += sum((p - x) ** 2 for p, x in zip(decoded, pixels)) / 4  # per-pixel mean over 2 x 2
        squared += sum((a - b) ** 2 for a, b in zip(z_e, z_q)) / 8  # mean over 2 images x 2 tokens x 2
    assert terms["recon"].item() == pytest.approx(recon, rel=1e-5)
    assert terms["commitment"].item() == pytest.approx(squared, rel=1e-5)
    if update == "ema":  # no codebook term: the moving averages learn the codebook
        assert "codebook" not in terms and terms["loss"].item() == pytest.approx(recon + 0.25 * squared, rel=1e-5)
        assert not torch.equal(model.quantizer.codebook, torch.tensor(CODEBOOK))
    else:
        assert terms["codebook"].item() == pytest.approx(squared, rel=1e-5)
        assert terms["loss"].item() == pytest.approx(recon + squared + 0.25 * squared, rel=1e-5)


def test_gradients_pass_straight_through_the_quantizer():
    model = hand_model("loss")
    model.hparams.commitment = 0.0
    x = torch.tensor([[0.25, 0.75], [1.0, 0.0]]).view(2, 1, 1, 2)
    terms, _ = model.loss_terms(x)
    (terms["loss"] - terms["codebook"]).backward()  # the reconstruction alone
    # Straight through: the encoder's output gets exactly the gradient the codes got in the decoder.
    codes = torch.tensor(NEAREST, requires_grad=True)
    nn.functional.mse_loss(model.decoder(codes), x).backward()
    assert model.encoder.rows.grad.abs().sum() > 0 and torch.allclose(model.encoder.rows.grad, codes.grad)
    assert model.quantizer.codebook.grad is None or model.quantizer.codebook.grad.abs().sum() == 0

    # The codebook term moves only the chosen codes, toward z_e: d/de mean (e - z_e)^2 = 2 (e - z_e) / 8.
    model.zero_grad()
    model.loss_terms(x)[0]["codebook"].backward()
    expected = torch.zeros(3, 2)
    for z_e, codes_of_image in zip(torch.tensor(Z_E).view(2, 2, 2), [[0, 1], [2, 1]]):
        for token, code in zip(z_e, codes_of_image):
            expected[code] += 2 * (torch.tensor(CODEBOOK[code]) - token) / 8
    assert torch.allclose(model.quantizer.codebook.grad, expected, atol=1e-6)
    assert model.encoder.rows.grad is None  # sg[z_e]: the codebook term does not move the encoder


@pytest.mark.parametrize("net", ["mlp", "conv"])
def test_the_encoder_learns_through_the_quantizer_with_real_networks(net):
    torch.manual_seed(0)
    model = VQVAE(**SMALL, net=net, commitment=0.0)
    model.loss_terms(torch.rand(5, 1, 8, 8))[0]["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())


def test_encode_is_continuous_and_decode_quantizes():
    torch.manual_seed(0)
    model = VQVAE(**SMALL).eval()
    x = torch.rand(6, 1, 8, 8)
    z = model.encode(x)
    quantized = model.quantize(z)
    assert not torch.equal(z, quantized) and all(
        row in model.quantizer.codebook.tolist() for row in quantized.view(-1, 2).tolist()
    )
    assert torch.equal(model.decode(z), model.decoder(quantized))
    assert torch.equal(model.decode(quantized + 1e-4), model.decode(quantized))  # the same codes, the same image
    assert torch.equal(model.reconstruct(x), model.decoder(quantized))
    assert torch.equal(model.loss_terms(x)[1], model.reconstruct(x))  # */mse measures the quantized decoding


def test_evaluation_counts_the_codes_of_the_epoch():
    torch.manual_seed(0)
    model = VQVAE(**SMALL).eval()
    batches = [torch.rand(7, 1, 8, 8) for _ in range(2)]
    model.on_validation_epoch_start()
    for i, x in enumerate(batches):
        model._evaluation_step("val", (x, torch.zeros(len(x))), i)
    codes = torch.cat([model.quantizer.nearest(model.tokens(model.encode(x))).flatten() for x in batches])
    assert torch.equal(model._usage["val"], torch.bincount(codes, minlength=6).float())
    assert model.quantizer.position_counts.sum() == 0  # evaluation leaves the training counts alone


def test_samples_come_from_the_training_frequencies_and_survive_a_checkpoint():
    torch.manual_seed(0)
    model = VQVAE(**SMALL)
    model.loss_terms(torch.rand(20, 1, 8, 8))  # training mode: counts the codes
    assert model.quantizer.position_counts.sum() == 20 * 2
    counted = model.quantizer.position_counts > 0
    drawn = model.quantizer.sample_indices(500, torch.Generator().manual_seed(0))
    assert all(counted[position, drawn[:, position]].all() for position in range(2))  # only codes that occurred

    restored = VQVAE(**SMALL)
    restored.load_state_dict(model.state_dict())
    model.eval(), restored.eval()
    first = restored.sample(4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(first, model.sample(4, generator=torch.Generator().manual_seed(1)))
    codes = model.quantizer.codebook[model.quantizer.sample_indices(4, torch.Generator().manual_seed(1))]
    assert torch.equal(first, model.decoder(codes.flatten(1)))


def test_latent_dim_must_be_a_multiple_of_the_embedding_dim():
    with pytest.raises(ConfigError, match=r"model\.latent_dim=6 .*model\.embedding_dim=4"):
        VQVAE(input_shape=[1, 8, 8], latent_dim=6, embedding_dim=4)
