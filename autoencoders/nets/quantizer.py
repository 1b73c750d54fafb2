"""Vector quantization against a learned codebook (van den Oord et al. 2017), for the VQ-VAE.

Token vectors are replaced by their nearest codebook vector. The codebook learns either from the
loss's codebook term (a parameter) or, by default, from exponential moving averages of the
encoder outputs assigned to each code (a buffer; appendix A.1 of the paper). While training, the
quantizer also counts which code each token position used over the epoch: those counts are the
VQ-VAE's sampling prior, its perplexity and codebook usage, and tell which codes are dead.

Under DDP every process sees its own share of each batch, so the statistics are summed over the
processes (`sum_across_processes`) before they are used: every process then applies the same EMA
update and keeps the same counts, and the codebooks stay equal without any broadcast per step.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import Tensor, nn

# model.codebook_update -> whether the codebook learns from the loss's codebook term (a parameter
# the optimizer updates) instead of from exponential moving averages (a buffer). The names are
# config_keys.CODEBOOK_UPDATES.
CODEBOOK_UPDATES = {"ema": False, "loss": True}

# Laplace smoothing of the EMA counts (the value Sonnet's VectorQuantizerEMA uses): a code that no
# token chose for a long time keeps a count above 0, so its vector (sum / count) stays finite.
LAPLACE_EPSILON = 1e-5


# --- the only places that talk to torch.distributed -------------------------------------------
def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def sum_across_processes(*tensors: Tensor) -> None:
    """Sum each tensor in place over all processes of a torch.distributed job (DDP); nothing
    happens in a single process. Every process must call this with tensors of the same shapes."""
    if _distributed():
        for tensor in tensors:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)


def copy_from_first_process(*tensors: Tensor) -> None:
    """Overwrite each tensor with process 0's copy (DDP); nothing happens in a single process."""
    if _distributed():
        for tensor in tensors:
            dist.broadcast(tensor, src=0)


# --- statistics of code usage ------------------------------------------------------------------
def perplexity(counts: Tensor) -> Tensor:
    """exp of the entropy (nats) of the code frequencies `counts` (K,): the number of equally
    used codes with the same entropy, from 1 (one code) to K (all alike); 0 when nothing was counted."""
    total = counts.sum()
    if total == 0:
        return counts.new_zeros(())
    frequencies = counts / total
    return torch.exp(-torch.special.xlogy(frequencies, frequencies).sum())


def codebook_usage(counts: Tensor) -> Tensor:
    """The fraction of codes used at least once."""
    return (counts > 0).float().mean()


def straight_through(z_e: Tensor, z_q: Tensor) -> Tensor:
    """z_q forward, identity backward: the decoder sees the codes, the encoder gets their gradient."""
    return z_e + (z_q - z_e).detach()


class VectorQuantizer(nn.Module):
    """A codebook of `codebook_size` vectors of `embedding_dim`, for tokens at `positions` places.

    Buffers (saved in checkpoints): `position_counts` (positions, K), the codes chosen at each
    token position over the current training epoch; with `update="ema"`, `ema_counts` (K) and
    `ema_sums` (K, D), from which `codebook` = ema_sums / Laplace-smoothed ema_counts; with
    `restart_dead_codes`, `recent_outputs` (K, D), encoder outputs of the latest training batch.
    """

    def __init__(
        self,
        codebook_size: int,
        embedding_dim: int,
        positions: int,
        update: str = "ema",
        decay: float = 0.99,
        restart_dead_codes: bool = False,
    ) -> None:
        super().__init__()
        self.decay, self.restarts = decay, restart_dead_codes
        self.learned_by_loss = CODEBOOK_UPDATES[update]
        # Uniform with variance 1/D per element, so a code has squared norm ~1 (Sonnet's variance scaling).
        bound = math.sqrt(3 / embedding_dim)
        codebook = torch.empty(codebook_size, embedding_dim).uniform_(-bound, bound)
        if self.learned_by_loss:
            self.codebook = nn.Parameter(codebook)
        else:
            self.register_buffer("codebook", codebook)
            # As if each code had been chosen once with its own vector: then sums / counts = codebook.
            self.register_buffer("ema_counts", torch.ones(codebook_size))
            self.register_buffer("ema_sums", codebook.clone())
        self.register_buffer("position_counts", torch.zeros(positions, codebook_size))
        if restart_dead_codes:
            self.register_buffer("recent_outputs", codebook.clone())

    @torch.no_grad()
    def nearest(self, tokens: Tensor) -> Tensor:
        """Index of the nearest code (squared Euclidean distance) for each token: (...,) for (..., D)."""
        flat = tokens.reshape(-1, tokens.shape[-1])
        codebook = self.codebook.detach()
        distances = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codebook.T + codebook.pow(2).sum(1)
        return distances.argmin(1).view(tokens.shape[:-1])

    @torch.no_grad()
    def record(self, tokens: Tensor, indices: Tensor) -> None:
        """A training batch's statistics: tokens (B, positions, D), their codes (B, positions).
        Counts each position's codes, moves the EMA codebook and keeps recent outputs."""
        size, positions = self.codebook.shape[0], indices.shape[1]
        offsets = torch.arange(positions, device=indices.device) * size
        batch_counts = torch.bincount((indices + offsets).flatten(), minlength=positions * size)
        batch_counts = batch_counts.view(positions, size).to(self.position_counts.dtype)
        flat, flat_indices = tokens.reshape(-1, tokens.shape[-1]), indices.flatten()
        if self.learned_by_loss:
            sum_across_processes(batch_counts)
        else:
            sums = torch.zeros_like(self.ema_sums).index_add_(0, flat_indices, flat.to(self.ema_sums.dtype))
            sum_across_processes(batch_counts, sums)  # before the update: every process applies the same one
            self.ema_update(batch_counts.sum(0), sums)
        self.position_counts += batch_counts
        if self.restarts:
            chosen = torch.randint(len(flat), (size,), device=flat.device)
            self.recent_outputs.copy_(flat[chosen])

    @torch.no_grad()
    def ema_update(self, counts: Tensor, sums: Tensor) -> None:
        """One EMA step from a batch's per-code token counts (K) and summed token vectors (K, D):
        N <- decay N + (1 - decay) counts, m <- decay m + (1 - decay) sums, e = m / N~ with the
        Laplace-smoothed N~_k = (N_k + eps) / (sum N + K eps) * sum N."""
        self.ema_counts.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.ema_sums.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.ema_counts.sum()
        smoothed = (self.ema_counts + LAPLACE_EPSILON) / (total + len(self.ema_counts) * LAPLACE_EPSILON) * total
        self.codebook.copy_(self.ema_sums / smoothed[:, None])

    @torch.no_grad()
    def start_epoch(self) -> int:
        """Before a training epoch: restart the codes the last epoch never chose (if asked), then
        zero the counts. Returns how many codes were restarted."""
        usage = self.position_counts.sum(0)
        dead = (usage == 0).nonzero().flatten()
        restarted = 0
        if self.restarts and usage.sum() > 0 and len(dead) > 0:  # usage 0 everywhere: no epoch counted yet
            # Different rows of the recent outputs, so restarted codes do not all start at one point.
            replacements = self.recent_outputs[torch.randperm(len(self.recent_outputs))[: len(dead)]]
            self.codebook.data[dead] = replacements.to(self.codebook.dtype)
            restarted = len(dead)
            if not self.learned_by_loss:
                self.ema_sums[dead], self.ema_counts[dead] = replacements, 1.0  # as at initialisation
                copy_from_first_process(self.ema_sums, self.ema_counts)
            copy_from_first_process(self.codebook.data)  # processes drew different recent outputs
        self.position_counts.zero_()
        return restarted

    @torch.no_grad()
    def sample_indices(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """(n, positions) codes, each position drawn from its code frequencies of the counted epoch
        (uniform where nothing was counted yet)."""
        counts = self.position_counts.detach().float().cpu()
        empty = counts.sum(1) == 0
        counts[empty] = 1.0
        return torch.multinomial(counts, n, replacement=True, generator=generator).T.to(self.codebook.device)
