"""LOGO's positional-index synthesis: train on short rows whose position ids span a long context.

LOGO (Tang et al. 2024, "LOGO -- Long cOntext aliGnment via efficient preference Optimization")
fits long-context preference training into memory by feeding a short input with position ids as a
long one would have (the method of PoSE, Zhu et al. 2024, "PoSE: Efficient Context Window
Extension of LLMs via Positional Skip-wise Training"). The prompt is cut into `chunks` contiguous
pieces; piece 0 keeps positions 0.., and piece i is shifted by a skip u_i, with
0 <= u_1 <= ... <= u_{chunks-1} <= target_length - row_length drawn uniformly and sorted, so the
position ids stay strictly increasing, inside each piece consecutive, and the last one is at most
target_length - 1. The response continues contiguously after the prompt's last position, so every
response token sees the same relative distances to the end of the prompt as in a real long input.
Chosen and rejected responses of one prompt share the prompt's positions.

Rows with synthetic positions are batched with an explicit attention mask: without one,
transformers reads a jump in position ids as the start of a packed document and would block
attention across the jump (masking_utils.find_packed_sequence_indices).
"""

from __future__ import annotations

import random


def skip_offsets(slack: int, chunks: int, rng: random.Random) -> list[int]:
    """[0, u_1, ..., u_{chunks-1}]: sorted uniform draws from [0, slack]; all 0 when slack <= 0."""
    if slack <= 0:
        return [0] * chunks
    return [0, *sorted(rng.randint(0, slack) for _ in range(chunks - 1))]


def chunked_positions(length: int, offsets: list[int]) -> list[int]:
    """Position ids of `length` tokens cut into len(offsets) near-equal contiguous pieces, piece i
    shifted by offsets[i] (a piece may be empty when length < len(offsets))."""
    chunks = len(offsets)
    bounds = [length * i // chunks for i in range(chunks + 1)]
    return [t + offsets[i] for i in range(chunks) for t in range(bounds[i], bounds[i + 1])]


def synthesize_prompt_positions(
    prompt_length: int, longest_row: int, target_length: int, chunks: int, rng: random.Random
) -> list[int]:
    """The prompt's synthetic position ids, leaving room for the longest response of its pair so
    that no row's last position passes target_length - 1."""
    return chunked_positions(prompt_length, skip_offsets(target_length - longest_row, chunks, rng))


def row_positions(prompt_positions: list[int], length: int) -> list[int]:
    """A row's position ids: the prompt's, then consecutive ones for the response (and padding)."""
    start = prompt_positions[-1] + 1 if prompt_positions else 0
    return prompt_positions[:length] + list(range(start, start + length - len(prompt_positions)))
