"""Batched greedy decoding over the Qwen2 language model with a KV cache.

Rows of a batch are padded anywhere (left of a row, or between a shared prefix and a row's own
suffix): every cached position carries a validity bit, queries attend only to valid keys at or
before them, and positions count valid tokens only, so a padded row computes what it would
compute alone (rotary attention depends on positions, not on slots). A prefilled cache can be
expanded (rows copied by index) so several rows continue from one prefix computed once.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from transformers.cache_utils import DynamicCache


@dataclass
class CachedRows:
    """A KV cache of B rows and which of its K slots hold real tokens (`valid_BK`, bool)."""

    cache: DynamicCache
    valid_BK: torch.Tensor

    def take(self, index_B: torch.Tensor) -> CachedRows:
        """A new CachedRows of rows `index_B`; this one is left as it is."""
        cache = copy.copy(self.cache)
        cache.layers = [copy.copy(layer) for layer in self.cache.layers]
        return CachedRows(cache, self.valid_BK).select(index_B)

    def select(self, index_B: torch.Tensor) -> CachedRows:
        """Rows `index_B` of this cache (a row may be repeated: prefix expansion). In place."""
        index_B = index_B.to(self.valid_BK.device)
        self.cache.reorder_cache(index_B)
        self.valid_BK = self.valid_BK[index_B]
        return self


def attention_mask_4d(
    valid_BK: torch.Tensor, q_len: int, dtype: torch.dtype, boolean: bool
) -> torch.Tensor:
    """[B, 1, Q, K] mask for the last `q_len` slots as queries: a query sees valid keys at or
    before its slot, and always itself (a padding query then stays finite; no valid query ever
    sees it). `boolean`: True = attend (SDPA); else additive 0 / dtype-min (eager attention)."""
    k = valid_BK.shape[1]
    dev = valid_BK.device
    q_slot = torch.arange(k - q_len, k, device=dev)
    k_slot = torch.arange(k, device=dev)
    allowed = (k_slot[None, :] <= q_slot[:, None])[None] & valid_BK[:, None, :]
    allowed = allowed | (k_slot[None, :] == q_slot[:, None])[None]
    allowed = allowed[:, None]
    if boolean:
        return allowed
    mask = torch.zeros(allowed.shape, dtype=dtype, device=dev)
    return mask.masked_fill_(~allowed, torch.finfo(dtype).min)


def extend(
    decoder: nn.Module,
    embeds_BQD: torch.Tensor,
    valid_BQ: torch.Tensor,
    rows: CachedRows | None,
) -> tuple[torch.Tensor, CachedRows]:
    """Run `decoder` (the Qwen2 body, `language_model.model`) over Q new slots per row after the
    cached ones; returns the new slots' last hidden states [B, Q, D] and the grown cache."""
    dev = embeds_BQD.device
    valid_BQ = valid_BQ.to(dev, torch.bool)
    if rows is None:
        rows = CachedRows(DynamicCache(config=decoder.config), valid_BQ[:, :0])
    valid_BK = torch.cat([rows.valid_BK.to(dev), valid_BQ], dim=1)
    q = embeds_BQD.shape[1]
    positions = (valid_BK.long().cumsum(1) - 1).clamp(min=0)[:, -q:]
    boolean = decoder.config._attn_implementation == "sdpa"
    mask = attention_mask_4d(valid_BK, q, embeds_BQD.dtype, boolean)
    out = decoder(
        inputs_embeds=embeds_BQD,
        attention_mask=mask,
        position_ids=positions,
        cache=rows.cache,
        use_cache=True,
    )
    return out.last_hidden_state, CachedRows(out.cache, valid_BK)


def left_pad(seqs: list[torch.Tensor], value=0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack [n_i, ...] tensors right-aligned: (padded [B, N, ...], valid [B, N] bool)."""
    width = max(len(s) for s in seqs)
    first = seqs[0]
    padded = first.new_full((len(seqs), width, *first.shape[1:]), value)
    valid = torch.zeros(len(seqs), width, dtype=torch.bool, device=first.device)
    for i, s in enumerate(seqs):
        if len(s):
            padded[i, width - len(s) :] = s
            valid[i, width - len(s) :] = True
    return padded, valid


@torch.no_grad()
def greedy(
    lm: nn.Module,
    rows: CachedRows,
    last_hidden_BD: torch.Tensor,
    max_new_tokens: int,
    eos: int,
) -> list[list[int]]:
    """Greedy continuation of every cached row (`lm` = the Qwen2ForCausalLM, `last_hidden_BD`
    = hidden state of each row's last token): new token ids per row, stopping at `eos` (not
    included) or after `max_new_tokens`. Finished rows keep decoding (ignored) until all stop."""
    steps: list[torch.Tensor] = []
    done = torch.zeros(last_hidden_BD.shape[0], dtype=torch.bool, device=last_hidden_BD.device)
    hidden = last_hidden_BD
    for step in range(max_new_tokens):
        token_B = lm.lm_head(hidden).float().argmax(-1)
        steps.append(token_B)
        done |= token_B == eos
        if bool(done.all()) or step == max_new_tokens - 1:
            break
        embeds = lm.get_input_embeddings()(token_B[:, None])
        new, rows = extend(lm.model, embeds, torch.ones_like(token_B[:, None]), rows)
        hidden = new[:, -1]
    if not steps:
        return [[] for _ in range(last_hidden_BD.shape[0])]
    out = []
    for seq in torch.stack(steps, dim=1).tolist():
        out.append(seq[: seq.index(eos)] if eos in seq else seq)
    return out
