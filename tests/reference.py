"""Plain, obviously correct reference implementations, written as in the paper."""

from __future__ import annotations

import math

import torch


def reference_nas(model, batch, eps=1e-6, region="after_instruction"):
    """NAS[sample, layer, head] from full cached patterns and Python loops over positions.

    NAS = sum_{i >= L_I} (A[i, t_Yes] + A[i, t_No]) * log(A[i, t_No] / A[i, t_Yes]),
    with the attention on multi-token candidates summed and clamped at eps.
    """
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    out = torch.zeros(len(batch), n_layers, n_heads, dtype=torch.float64)
    for row in range(len(batch)):
        real = batch.attention_mask[row].bool()
        tokens = batch.tokens[row][real][None]
        shift = int(real.nonzero()[0])  # left padding moves every position
        yes = [int(p) - shift for p in batch.pos_cand[row].nonzero().flatten()]
        no = [int(p) - shift for p in batch.neg_cand[row].nonzero().flatten()]
        start = int(batch.instr_end[row]) - shift
        answer = int(batch.answer_pos[row]) - shift
        queries = [answer] if region == "answer" else range(start, answer + 1)
        with torch.no_grad():
            _, cache = model.run_with_cache(tokens)
        for layer in range(n_layers):
            pattern = cache[f"blocks.{layer}.attn.hook_pattern"][0].double()
            for head in range(n_heads):
                total = 0.0
                for i in queries:
                    a_yes = sum(float(pattern[head, i, k]) for k in yes)
                    a_no = sum(float(pattern[head, i, k]) for k in no)
                    total += (a_yes + a_no) * (math.log(max(a_no, eps)) - math.log(max(a_yes, eps)))
                out[row, layer, head] = total
    return out
