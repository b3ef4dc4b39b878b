"""Choosing the next token from logits: temperature, top-k, top-p (nucleus), from a seeded generator
(the seed is a field of each domain's settings)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SamplingConfig:
    temperature: float = 0.8  # <= 0 means greedy (always the most likely token)
    top_k: int = 0  # keep only the k most likely tokens; 0 keeps all
    top_p: float = 1.0  # keep the smallest set whose probability reaches p; 1.0 keeps all


def make_generator(seed: int, device="cpu") -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    return generator


def filtered_probs(logits: torch.Tensor, config: SamplingConfig) -> torch.Tensor:
    """Probabilities after temperature, top-k and top-p. logits: (V,) -> (V,)."""
    logits = logits.float() / config.temperature
    if 0 < config.top_k < logits.numel():
        kth = torch.topk(logits, config.top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if config.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # drop a token when the ones before it already reach top_p (the first always stays)
        drop = (torch.cumsum(sorted_probs, 0) - sorted_probs) >= config.top_p
        drop[0] = False  # a top_p of 0 or below would otherwise drop every token
        probs = probs.scatter(0, order, sorted_probs.masked_fill(drop, 0.0))
        probs = probs / probs.sum()
    return probs


def sample_next(logits: torch.Tensor, config: SamplingConfig, generator: torch.Generator) -> int:
    """One token index from (V,) logits."""
    if config.temperature <= 0:
        return int(torch.argmax(logits))
    probs = filtered_probs(logits, config)
    return int(torch.multinomial(probs, 1, generator=generator))
