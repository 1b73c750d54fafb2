"""The VQ-VAE's quantizer: nearest codes, one EMA step and usage statistics against hand
computation, the DDP reduction before the update, dead-code restarts, the sampling prior."""

import math

import pytest
import torch

from autoencoders.nets import quantizer as quantizer_module
from autoencoders.nets.quantizer import LAPLACE_EPSILON, VectorQuantizer, codebook_usage, perplexity

CODEBOOK = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]
# Two images of two tokens each; their nearest codes are 0, 1 (first image) and 0, 2 (second).
TOKENS = [[[0.1, 0.1], [0.9, 0.2]], [[0.2, 0.0], [-0.1, 0.8]]]
CODES = [[0, 1], [0, 2]]


def small_quantizer(update: str = "ema", restarts: bool = False) -> VectorQuantizer:
    quantizer = VectorQuantizer(3, 2, positions=2, update=update, decay=0.5, restart_dead_codes=restarts)
    with torch.no_grad():
        quantizer.codebook.copy_(torch.tensor(CODEBOOK))
        if update == "ema":
            quantizer.ema_sums.copy_(torch.tensor(CODEBOOK))
    return quantizer


def ema_by_hand(copies: int) -> list[list[float]]:
    """The codebook after one EMA step (decay 0.5, counts starting at 1, sums at the codebook) on
    `copies` processes that each saw TOKENS: plain Python, the formulas of the paper's appendix."""
    decay, flat_tokens, flat_codes = 0.5, [t for image in TOKENS for t in image], [c for image in CODES for c in image]
    counts = [copies * flat_codes.count(k) for k in range(3)]
    sums = [[copies * sum(t[d] for t, c in zip(flat_tokens, flat_codes) if c == k) for d in range(2)] for k in range(3)]
    n = [decay * 1.0 + (1 - decay) * counts[k] for k in range(3)]
    m = [[decay * CODEBOOK[k][d] + (1 - decay) * sums[k][d] for d in range(2)] for k in range(3)]
    total = sum(n)
    smoothed = [(n[k] + LAPLACE_EPSILON) / (total + 3 * LAPLACE_EPSILON) * total for k in range(3)]
    return [[m[k][d] / smoothed[k] for d in range(2)] for k in range(3)]


def is_row_of(row: torch.Tensor, matrix: torch.Tensor) -> bool:
    return bool((matrix == row).all(1).any())


def test_nearest_codes_and_one_ema_update_match_hand_computation():
    quantizer = small_quantizer()
    tokens = torch.tensor(TOKENS)
    indices = quantizer.nearest(tokens)
    assert indices.tolist() == CODES
    quantizer.record(tokens, indices)
    assert torch.allclose(quantizer.codebook, torch.tensor(ema_by_hand(copies=1)), atol=1e-6)
    assert quantizer.ema_counts.tolist() == pytest.approx([1.5, 1.0, 1.0])
    # Per-position usage: position 0 chose code 0 twice, position 1 codes 1 and 2.
    assert quantizer.position_counts.tolist() == [[2.0, 0.0, 0.0], [0.0, 1.0, 1.0]]


def test_statistics_are_summed_over_processes_before_the_ema_update(monkeypatch):
    # Two processes that saw the same batch: all_reduce doubles every statistic. The update must use
    # the doubled counts and sums (each process then moves its codebook the same way), and the usage
    # counts are summed too.
    reduced = []

    def all_reduce(tensor, op):
        reduced.append(tuple(tensor.shape))
        tensor.mul_(2)

    monkeypatch.setattr(quantizer_module.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(quantizer_module.dist, "all_reduce", all_reduce)
    quantizer = small_quantizer()
    tokens = torch.tensor(TOKENS)
    quantizer.record(tokens, quantizer.nearest(tokens))
    assert reduced == [(2, 3), (3, 2)]  # per-position counts and per-code sums, once each
    assert torch.allclose(quantizer.codebook, torch.tensor(ema_by_hand(copies=2)), atol=1e-6)
    assert not torch.allclose(quantizer.codebook, torch.tensor(ema_by_hand(copies=1)), atol=1e-3)
    assert quantizer.position_counts.tolist() == [[4.0, 0.0, 0.0], [0.0, 2.0, 2.0]]


def test_a_codebook_learned_by_the_loss_is_a_parameter_the_record_leaves_alone():
    quantizer = small_quantizer(update="loss")
    assert isinstance(quantizer.codebook, torch.nn.Parameter) and not hasattr(quantizer, "ema_counts")
    tokens = torch.tensor(TOKENS)
    quantizer.record(tokens, quantizer.nearest(tokens))
    assert quantizer.codebook.tolist() == CODEBOOK and quantizer.position_counts.sum() == 4


def test_perplexity_and_usage():
    counts = torch.tensor([2.0, 1.0, 1.0, 0.0])  # frequencies 1/2, 1/4, 1/4, 0: entropy 1.5 ln 2
    assert perplexity(counts).item() == pytest.approx(2**1.5)
    assert codebook_usage(counts).item() == 0.75
    assert perplexity(torch.tensor([5.0, 0.0])).item() == pytest.approx(1.0)
    assert perplexity(torch.tensor([3.0, 3.0, 3.0])).item() == pytest.approx(3.0)
    assert perplexity(torch.zeros(4)).item() == 0.0


def test_dead_codes_restart_from_recent_outputs_before_an_epoch():
    quantizer = small_quantizer(restarts=True)
    assert quantizer.start_epoch() == 0  # nothing counted yet: no code is known to be dead
    tokens = torch.tensor(TOKENS)
    quantizer.record(tokens, torch.tensor([[0, 1], [0, 1]]))  # code 2 unused this epoch
    assert all(is_row_of(row, tokens.flatten(0, 1)) for row in quantizer.recent_outputs)
    kept = quantizer.codebook[:2].clone()
    assert quantizer.start_epoch() == 1
    restarted = quantizer.codebook[2]
    assert is_row_of(restarted, quantizer.recent_outputs) and torch.equal(quantizer.codebook[:2], kept)
    assert torch.equal(quantizer.ema_sums[2], restarted) and quantizer.ema_counts[2] == 1.0
    assert quantizer.position_counts.sum() == 0  # the next epoch counts afresh


def test_samples_follow_each_positions_code_frequencies():
    quantizer = small_quantizer()
    quantizer.position_counts.copy_(torch.tensor([[0.0, 5.0, 0.0], [1.0, 0.0, 3.0]]))
    drawn = quantizer.sample_indices(4000, torch.Generator().manual_seed(0))
    assert drawn.shape == (4000, 2) and (drawn[:, 0] == 1).all()
    assert set(drawn[:, 1].tolist()) == {0, 2} and (drawn[:, 1] == 2).float().mean().item() == pytest.approx(
        0.75, abs=0.03
    )
    quantizer.position_counts.zero_()  # nothing counted: uniform
    assert set(quantizer.sample_indices(200, torch.Generator().manual_seed(0)).flatten().tolist()) == {0, 1, 2}


def test_the_initial_codebook_has_unit_scale_codes():
    codebook = VectorQuantizer(4096, 4, positions=1).codebook
    assert codebook.pow(2).sum(1).mean().item() == pytest.approx(1.0, rel=0.05)
    assert codebook.abs().max().item() <= math.sqrt(3 / 4)


def _record_in_process(rank: int, rendezvous: str, out: str) -> None:
    """One of two DDP-like processes (gloo): the same initial quantizer, its own half of a batch."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    try:
        quantizer = small_quantizer()
        tokens = torch.tensor(TOKENS)[rank : rank + 1]
        quantizer.record(tokens, quantizer.nearest(tokens))
        torch.save({"codebook": quantizer.codebook, "counts": quantizer.position_counts}, f"{out}.{rank}")
    finally:
        torch.distributed.destroy_process_group()


def test_two_processes_with_half_a_batch_each_update_like_one_with_all_of_it(tmp_path):
    # Real torch.distributed (gloo, two processes): each process ends with the codebook and counts
    # that one process computes from the whole batch.
    torch.multiprocessing.spawn(
        _record_in_process, args=(str(tmp_path / "rendezvous"), str(tmp_path / "out")), nprocs=2
    )
    whole = small_quantizer()
    tokens = torch.tensor(TOKENS)
    whole.record(tokens, whole.nearest(tokens))
    for rank in range(2):
        saved = torch.load(tmp_path / f"out.{rank}", weights_only=True)
        assert torch.allclose(saved["codebook"], whole.codebook, atol=1e-6)
        assert torch.equal(saved["counts"], whole.position_counts)
