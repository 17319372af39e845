"""Greedy short answers (the paper's Prompt II) with the first answer token's entropy.

Used to find what a model knows (probing sets) and to sort questions into knowledge
categories. Decoding is greedy and batched, unembedding only the last position of each step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pandas as pd
import torch
from tqdm.auto import tqdm

from nasalens.data.sample import Sample
from nasalens.deprecation import keyword_only
from nasalens.errors import NasalensError
from nasalens.models import adapt
from nasalens.models.interface import ModelAdapter
from nasalens.prompts import Template, encode, short_answer

#: Fewest questions for which knowing none of them is treated as a fault, not a result.
MIN_QUESTIONS_FOR_KNOWN_CHECK = 20


@keyword_only("template", 2)
def short_answers(
    model: object,
    samples: Sequence[Sample],
    *,
    template: Template | None = None,
    max_new_tokens: int = 16,
    chunk_size: int = 16,
    progress: bool = True,
) -> pd.DataFrame:
    """Answer each question greedily and say how sure the first answer token was.

    Args:
        model: A model from `nasalens.load_model`.
        samples: The questions (labels are not shown).
        template: The prompt; default: the paper's Prompt II (`short_answer()`).
        max_new_tokens: Longest answer in tokens; decoding also stops at end of turn or a
            newline.
        chunk_size: Questions per forward pass.
        progress: Show a progress bar.

    Returns:
        One row per sample: ``id``, ``answer`` (the decoded text, stripped), ``n_tokens``,
        ``first_entropy`` (entropy in nats of the first answer token's distribution) and
        ``first_prob`` (probability of the token chosen first).

    Raises:
        NasalensError: When ``max_new_tokens`` is below 1.
    """
    if max_new_tokens < 1:
        raise NasalensError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    template = template or short_answer()
    adapter = adapt(model)
    tok = adapter.tokenizer
    batch = encode(model, samples, template=template, padding_side="left")
    texts: dict[int, str] = {}

    def text(token: int) -> str:
        if token not in texts:
            texts[token] = tok.decode([token])
        return texts[token]

    rows: list[dict] = [{} for _ in range(len(batch))]
    total = math.ceil(len(batch) / chunk_size)
    chunks = tqdm(batch.chunks(chunk_size), total=total, desc="answers", disable=not progress)
    with torch.no_grad():
        for index, sub in chunks:
            new, first = adapter.greedy(sub.tokens, sub.attention_mask, max_new_tokens)
            logp = first.float().log_softmax(dim=-1)
            entropy = -(logp.exp() * logp).sum(dim=-1)
            first_prob = logp.max(dim=-1).values.exp()
            for j, row in enumerate(index.tolist()):
                ids = _until_stop(new[j].tolist(), tok.eos_token_id, text)
                rows[row] = {
                    "id": batch.samples[row].id,
                    "answer": tok.decode(ids, skip_special_tokens=True).strip(),
                    "n_tokens": len(ids),
                    "first_entropy": float(entropy[j]),
                    "first_prob": float(first_prob[j]),
                }
    return pd.DataFrame(rows)


def _until_stop(ids: list[int], eos: int | None, text: Callable[[int], str]) -> list[int]:
    """The answer's ids before the end of turn or the first line break."""
    out = []
    for token in ids:
        if token == eos:
            break
        piece = text(token)
        if "\n" in piece:
            head = piece.split("\n")[0]
            if head.strip():
                out.append(token)  # a token like "5.\n": keep it, the answer ends here
            break
        out.append(token)
    return out


def decoding_agrees(model: object, samples: Sequence[Sample], *, max_new_tokens: int = 8) -> bool:
    """Whether the model's fast (cached) greedy decoding equals plain greedy decoding.

    Plain decoding runs the whole sequence through the model at every step and depends on
    nothing but the forward pass; a difference means the cached path is broken in this
    environment (as TransformerLens 4.3's was under transformers 5.24).
    """
    adapter = adapt(model)
    batch = encode(model, samples, template=short_answer(), padding_side="left")
    with torch.no_grad():
        fast, _ = adapter.greedy(batch.tokens, batch.attention_mask, max_new_tokens)
        plain, _ = ModelAdapter.greedy(adapter, batch.tokens, batch.attention_mask, max_new_tokens)
    return fast.shape == plain.shape and torch.equal(fast, plain)


def require_known(
    model: object, samples: Sequence[Sample], answers: Sequence[str], n_known: int, *, what: str
) -> None:
    """Raise when none of many questions is known: a broken environment, not a finding.

    A model that answers short questions at all knows some of 20 or more simple facts (the
    embedded model knows about 100 of the 170 built-in probe facts). Knowing none usually
    means the answers were decoded wrongly, and everything built on them (probing sets,
    knowledge categories, taught facts) would come back silently empty.

    Args:
        model: The model whose short answers were matched.
        samples: The questions asked, as positive samples.
        answers: The model's answers, in order.
        n_known: How many matched gold.
        what: Who asks, for the message (e.g. ``"probe_set"``).

    Raises:
        NasalensError: When ``n_known`` is 0 for `MIN_QUESTIONS_FOR_KNOWN_CHECK` or more
            questions; the message says whether cached decoding disagrees with plain decoding.
    """
    if n_known or len(samples) < MIN_QUESTIONS_FOR_KNOWN_CHECK:
        return
    import importlib.metadata

    versions = ", ".join(
        f"{pkg} {importlib.metadata.version(pkg)}" for pkg in ("transformers", "transformer-lens")
    )
    shown = "; ".join(repr(a[:40]) for a in answers[:3])
    if not decoding_agrees(model, samples[:4]):
        cause = (
            f"cached greedy decoding disagrees with plain decoding here ({versions}): install "
            "the versions in nasalens's lock file (make install) or report the versions"
        )
    else:
        cause = (
            f"decoding is self-consistent ({versions}); check that the model is an instruction "
            "model whose chat template fits the prompts, or pass questions it can answer"
        )
    raise NasalensError(
        f"{what}: the model's short answers match none of {len(samples)} questions (first "
        f"answers: {shown}); {cause}"
    )
