"""Encoding samples into a padded `Batch`: tokens, mask, and where the candidates and L_I are.

Positions come from the tokenizer's character offsets, never from searching token strings, so
leading-space and multi-token candidates are found as they are. User text is text: a question,
label or few-shot example that spells a special token (``<|im_end|>``, BOS, EOS) is tokenized
as ordinary characters, so data can never rewrite the chat turns of its prompt.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from nasalens.data.sample import Sample
from nasalens.deprecation import keyword_only
from nasalens.errors import NasalensError, quote
from nasalens.models import adapt
from nasalens.prompts.templates import Rendered, Span, Template, binary

PaddingSide = Literal["right", "left"]


@dataclass(frozen=True)
class Batch:
    """Samples encoded for one model: padded tokens and, per row, the positions NAS reads.

    Attributes:
        tokens: Token ids, padded.
        attention_mask: 1 on real tokens, 0 on padding.
        pos_cand: True at the positions of the positive candidate ("Yes") in the instruction.
        neg_cand: True at the positions of the negative candidate ("No") in the instruction.
        instr_end: The first position after the instruction (the paper's L_I).
        answer_pos: The last real position, whose next-token logits hold the answer.
        gold: The correct decision (True = positive candidate).
        samples: The samples, in row order.
        prompts: The full prompt text of each row.
        template: The template used.
        pos_ids: First-token ids of the positive answer's variants (" Yes", "yes", ...).
        neg_ids: First-token ids of the negative answer's variants.
        pos_target: The positive answer token the model is trained towards ("Yes").
        neg_target: The negative answer token.
    """

    tokens: Int[Tensor, "batch pos"]
    attention_mask: Int[Tensor, "batch pos"]
    pos_cand: Bool[Tensor, "batch pos"]
    neg_cand: Bool[Tensor, "batch pos"]
    instr_end: Int[Tensor, " batch"]
    answer_pos: Int[Tensor, " batch"]
    gold: Bool[Tensor, " batch"]
    samples: tuple[Sample, ...]
    prompts: tuple[str, ...]
    template: Template
    pos_ids: tuple[int, ...]
    neg_ids: tuple[int, ...]
    pos_target: int | None
    neg_target: int | None

    def __post_init__(self) -> None:
        """Check that every per-row field has one entry per row."""
        n = self.tokens.shape[0]
        sizes = {len(self.samples), len(self.prompts), self.gold.shape[0], self.answer_pos.shape[0]}
        if sizes != {n} or self.pos_cand.shape != self.tokens.shape:
            raise AssertionError(f"inconsistent batch fields: {sizes} rows vs {n} tokens")

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def __repr__(self) -> str:
        return (
            f"Batch({len(self)} rows x {self.tokens.shape[1]} positions, "
            f"template={self.template.name!r}, {int(self.gold.sum())} gold positive)"
        )

    def select(self, rows: Sequence[int] | Tensor | slice) -> Batch:
        """Return the rows ``rows``, with padding columns that all of them share removed."""
        index = torch.arange(len(self))[rows] if isinstance(rows, slice) else torch.as_tensor(rows)
        index = index.long().reshape(-1)
        if index.numel() == 0:
            raise NasalensError("cannot select zero rows from a batch")
        mask = self.attention_mask[index]
        used = mask.any(dim=0).nonzero().squeeze(-1)
        lo, hi = int(used.min()), int(used.max()) + 1
        keep = [int(i) for i in index]
        return replace(
            self,
            tokens=self.tokens[index, lo:hi],
            attention_mask=mask[:, lo:hi],
            pos_cand=self.pos_cand[index, lo:hi],
            neg_cand=self.neg_cand[index, lo:hi],
            instr_end=self.instr_end[index] - lo,
            answer_pos=self.answer_pos[index] - lo,
            gold=self.gold[index],
            samples=tuple(self.samples[i] for i in keep),
            prompts=tuple(self.prompts[i] for i in keep),
        )

    def chunks(self, size: int, *, by_length: bool = True) -> Iterator[tuple[Tensor, Batch]]:
        """Return an iterator of ``(row indices, sub-batch)`` of at most ``size`` rows.

        With ``by_length`` the rows are grouped by length, so that little padding is computed;
        the indices say where each row came from.

        Raises:
            NasalensError: At once (not when iterated) when ``size`` is not a whole number >= 1.
        """
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise NasalensError(
                f"chunk_size must be a whole number, at least 1, got {quote(size, 60)}"
            )
        return self._chunks(size, by_length)

    def _chunks(self, size: int, by_length: bool) -> Iterator[tuple[Tensor, Batch]]:
        order = torch.arange(len(self))
        if by_length:
            order = torch.argsort(self.attention_mask.sum(dim=1), stable=True)
        for start in range(0, len(self), size):
            index = order[start : start + size]
            yield index, self.select(index)


@keyword_only("template", 2)
def encode(
    model: object,
    samples: Sequence[Sample],
    *,
    template: Template | None = None,
    padding_side: PaddingSide = "right",
    max_length: int | None = None,
    truncate: Literal["error", "left"] = "error",
) -> Batch:
    """Encode samples for ``model``: render, apply the chat template, tokenize, localize.

    Args:
        model: A model from `nasalens.load_model` (its tokenizer is used).
        samples: The samples; ids must be unique.
        template: The template; defaults to the paper's Prompt I (`binary()`).
        padding_side: Where padding goes; results do not depend on it.
        max_length: Longest prompt allowed in tokens; defaults to the model's context length.
        truncate: "error" raises on longer prompts; "left" drops their first tokens (an error
            still names any sample whose instruction is cut).

    Returns:
        The padded batch.

    Raises:
        NasalensError: When a candidate is missing from the instruction or cut by truncation,
            a prompt is longer than ``max_length``, or ``samples`` is empty.

    Example:
        >>> batch = nasalens.encode(model, nasalens.data.builtin("eval", n=8))  # doctest: +SKIP
    """
    if not samples:
        raise NasalensError("no samples to encode; pass at least one Sample")
    if padding_side not in ("right", "left"):
        raise NasalensError(f"padding_side must be 'right' or 'left', got {quote(padding_side)}")
    if truncate not in ("error", "left"):
        raise NasalensError(f"truncate must be 'error' or 'left', got {quote(truncate)}")
    if max_length is not None and (
        isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1
    ):
        raise NasalensError(
            f"max_length must be a whole number of tokens >= 1 or None (the model's context), "
            f"got {quote(max_length, 60)}"
        )
    adapter = adapt(model)
    tok = adapter.tokenizer
    template = template or binary()
    limit = adapter.info.n_ctx if max_length is None else max_length
    chat = _use_chat(tok, template)
    rows = [_encode_one(tok, template, s, chat, limit, truncate) for s in _unique(samples)]
    width = max(len(r[1]) for r in rows)
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    n = len(rows)
    tokens = torch.full((n, width), pad, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    pos_cand = torch.zeros((n, width), dtype=torch.bool)
    neg_cand = torch.zeros((n, width), dtype=torch.bool)
    instr_end = torch.zeros(n, dtype=torch.long)
    answer_pos = torch.zeros(n, dtype=torch.long)
    for i, (_, ids, pos, neg, end) in enumerate(rows):
        shift = width - len(ids) if padding_side == "left" else 0
        tokens[i, shift : shift + len(ids)] = torch.tensor(ids)
        mask[i, shift : shift + len(ids)] = 1
        pos_cand[i, [shift + p for p in pos]] = True
        neg_cand[i, [shift + p for p in neg]] = True
        instr_end[i] = shift + end
        answer_pos[i] = shift + len(ids) - 1
    pos_ids, pos_target = _answer_ids(tok, template, 0, chat)
    neg_ids, neg_target = _answer_ids(tok, template, 1, chat)
    shared = set(pos_ids) & set(neg_ids)
    return Batch(
        tokens=tokens,
        attention_mask=mask,
        pos_cand=pos_cand,
        neg_cand=neg_cand,
        instr_end=instr_end,
        answer_pos=answer_pos,
        gold=torch.tensor([s.gold for s in samples], dtype=torch.bool),
        samples=tuple(samples),
        prompts=tuple(r[0] for r in rows),
        template=template,
        pos_ids=tuple(i for i in pos_ids if i not in shared),
        neg_ids=tuple(i for i in neg_ids if i not in shared),
        pos_target=pos_target,
        neg_target=neg_target,
    )


def _unique(samples: Sequence[Sample]) -> Sequence[Sample]:
    seen: set[str] = set()
    for s in samples:
        if not isinstance(s, Sample):
            raise NasalensError(f"expected Sample objects, got {type(s).__name__}: {quote(s, 80)}")
        if s.id in seen:
            raise NasalensError(f"sample id {quote(s.id)} appears twice; ids must be unique")
        seen.add(s.id)
    return samples


def _use_chat(tok: object, template: Template) -> bool:
    has_template = bool(getattr(tok, "chat_template", None))
    if template.chat and not has_template:
        raise NasalensError(
            f"template {quote(template.name)} asks for the chat template, but the tokenizer has "
            "none; pass chat=False for a plain prompt"
        )
    return has_template if template.chat is None else template.chat


def _prompt(tok: object, template: Template, text: str, chat: bool) -> tuple[str, int]:
    """Return the full prompt and the offset of the user text inside it."""
    if not chat:
        return text, 0
    messages = [{"role": "user", "content": text}]
    if template.system is not None:
        messages.insert(0, {"role": "system", "content": template.system})
    full = tok.apply_chat_template(  # type: ignore[attr-defined]
        messages, tokenize=False, add_generation_prompt=True
    )
    offset = full.rfind(text)
    if offset < 0:
        raise NasalensError(
            f"the chat template of this tokenizer changes the user text (template "
            f"{quote(template.name)}), so candidates cannot be localized; pass chat=False"
        )
    return full, offset


def _encode_one(
    tok: object, template: Template, sample: Sample, chat: bool, limit: int, truncate: str
) -> tuple[str, list[int], list[int], list[int], int]:
    """Prompt, token ids, positive and negative candidate positions, and L_I of one sample."""
    rendered: Rendered = template.render(sample)
    full, offset = _prompt(tok, template, rendered.text, chat)
    ids, offsets = _tokenize(tok, full, offset, offset + len(rendered.text))
    bos = getattr(tok, "bos_token_id", None)
    if not chat and bos is not None:
        ids, offsets = [bos, *ids], [(0, 0), *offsets]
    if len(ids) > limit:
        if truncate == "error":
            raise NasalensError(
                f"sample {quote(sample.id)}: the prompt has {len(ids)} tokens, more than the limit "
                f"of {limit}; shorten its question or context, or pass truncate='left'"
            )
        ids, offsets = ids[-limit:], offsets[-limit:]

    def covering(span: Span | None) -> list[int]:
        if span is None:
            return []
        lo, hi = span[0] + offset, span[1] + offset
        return [i for i, (a, b) in enumerate(offsets) if b > a and a < hi and b > lo]

    pos, neg = covering(rendered.pos_cand), covering(rendered.neg_cand)
    instr_stop = rendered.instruction[1] + offset
    after = [i for i, (a, b) in enumerate(offsets) if b > instr_stop]
    if template.candidates is not None:
        for word, where in zip(template.candidates, (pos, neg), strict=True):
            if not where:
                raise NasalensError(
                    f"sample {quote(sample.id)}: candidate {quote(word)} of template "
                    f"{quote(template.name)} was cut by truncation to {limit} tokens; raise "
                    "max_length or shorten the prompt"
                )
    if not after or (truncate == "left" and not covering(rendered.instruction)):
        raise NasalensError(
            f"sample {quote(sample.id)}: the instruction of template {quote(template.name)} was "
            f"cut by truncation to {limit} tokens; raise max_length or shorten the prompt"
        )
    return full, ids, pos, neg, after[0]


def _tokenize(tok: object, full: str, lo: int, hi: int) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids and character offsets of a prompt whose user text is ``full[lo:hi]``.

    The prompt is tokenized in one piece unless a special token starts inside the user text;
    then the user text is tokenized on its own with special tokens split into plain characters
    (``split_special_tokens``), between the template's own parts. Prompts without such text are
    tokenized exactly as before.
    """
    specials = _special_ids(tok)
    ids, offsets = _encode_piece(tok, full, 0, split=False)
    if not any(i in specials and lo <= a < hi for i, (a, _) in zip(ids, offsets, strict=True)):
        return ids, offsets
    ids, offsets = [], []
    for start, stop, split in ((0, lo, False), (lo, hi, True), (hi, len(full), False)):
        if stop > start:
            piece_ids, piece_offsets = _encode_piece(tok, full[start:stop], start, split=split)
            ids += piece_ids
            offsets += piece_offsets
    return ids, offsets


def _encode_piece(
    tok: object, text: str, start: int, *, split: bool
) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids of ``text`` and their offsets shifted by ``start``."""
    enc = tok(  # type: ignore[operator]
        text, add_special_tokens=False, return_offsets_mapping=True, split_special_tokens=split
    )
    return list(enc["input_ids"]), [(a + start, b + start) for a, b in enc["offset_mapping"]]


def _special_ids(tok: object) -> set[int]:
    """Ids of the tokenizer's special tokens (chat control, BOS, EOS, padding, ...)."""
    ids = set(getattr(tok, "all_special_ids", ()) or ())
    added = getattr(tok, "added_tokens_decoder", None) or {}
    return ids | {i for i, token in added.items() if getattr(token, "special", False)}


def _answer_ids(
    tok: object, template: Template, which: int, chat: bool
) -> tuple[list[int], int | None]:
    """First-token ids of a candidate's answer variants, and the primary one.

    The primary form is the word as the model would answer: no leading space after a chat
    template's generation prompt, a leading space after a plain "Answer:". Other case and space
    variants count only when they are a single token.
    """
    if template.candidates is None:
        return [], None
    word = template.candidates[which].strip()
    encode = tok.encode  # type: ignore[attr-defined]
    primary = encode(("" if chat else " ") + word, add_special_tokens=False)
    ids = [primary[0]] if primary else []
    for form in dict.fromkeys([word, word.lower(), word.upper(), word.capitalize()]):
        for text in (form, " " + form):
            got = encode(text, add_special_tokens=False)
            if len(got) == 1 and got[0] not in ids:
                ids.append(got[0])
    return ids, (primary[0] if primary else None)
