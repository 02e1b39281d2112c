"""Next-token loss on reply tokens only, without materialising logits for the prompt.

The LM head of a small model is most of its FLOPs on CPU (49k vocabulary x every
position); projecting only the labelled positions makes training and perplexity
evaluation several times cheaper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100


def pad_batch(
    examples: list[tuple[list[int], list[int]]], pad_id: int, device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, (x, y) in enumerate(examples):
        ids[row, : len(x)] = torch.tensor(x)
        labels[row, : len(y)] = torch.tensor(y)
        mask[row, : len(x)] = 1
    return ids.to(device), mask.to(device), labels.to(device)


def reply_nll(
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row summed negative log-likelihood of the labelled tokens, and their counts."""
    hidden = model.get_decoder()(input_ids=input_ids, attention_mask=attention_mask)[0]
    targets = labels[:, 1:]
    keep = targets != IGNORE
    logits = model.get_output_embeddings()(hidden[:, :-1][keep]).float()
    nll = F.cross_entropy(logits, targets[keep], reduction="none")
    rows = keep.nonzero()[:, 0]
    per_row = torch.zeros(input_ids.shape[0], dtype=nll.dtype, device=nll.device)
    per_row = per_row.index_add(0, rows, nll)
    return per_row, keep.sum(dim=1)
