"""Prompting scenarios of the sequel paper: the negative bias with context, an IDK option, CoT.

Owns the four scenarios (plain Prompt I, with relevant context, with an "I don't know" option
read out three ways at the answer position, and chain of thought parsed for its final Yes/No)
and their summary per knowledge category, with the sample counts behind every cell.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from nasalens.analysis.knowledge import Knowledge, cells, classify_knowledge
from nasalens.data.sample import Sample
from nasalens.errors import NasalensError
from nasalens.metrics import classification, evaluate
from nasalens.models import adapt
from nasalens.prompts import INSTRUCTIONS, Batch, Template, binary, encode

logger = logging.getLogger(__name__)

Scenario = Literal["plain", "context", "idk", "cot"]
#: The scenarios, in table order.
SCENARIOS: tuple[Scenario, ...] = ("plain", "context", "idk", "cot")
#: The "I don't know" answer; its first token is the third option at the answer position.
IDK_PHRASE = "I don't know"
#: Prompt I with the "I don't know" option added.
IDK_INSTRUCTION = INSTRUCTIONS["nasa"] + f" If you do not know the answer, answer {IDK_PHRASE}."
#: Prompt I asking for reasoning first, then a final answer. (A literal answer form such as
#: "end with: So the answer is Yes or No" made SmolLM2 copy it with the first option.)
COT_INSTRUCTION = (
    INSTRUCTIONS["nasa"] + " Think step by step, then give your final answer, {pos} or {neg}."
)
#: The cue that ends a chain-of-thought prompt (instead of "Answer:").
COT_CUE = "Let's think step by step."
#: What the per-sample ``answer`` column holds.
ANSWERS = ("yes", "no", "idk", "unparsed")


def idk_template(*, chat: bool | None = None) -> Template:
    """Return Prompt I with an "I don't know" option added to its instruction."""
    return replace(binary(chat=chat), name="binary-idk", instruction=IDK_INSTRUCTION)


def cot_template(*, chat: bool | None = None) -> Template:
    """Return Prompt I asking for step-by-step reasoning and a final Yes or No."""
    return replace(
        binary(chat=chat), name="binary-cot", instruction=COT_INSTRUCTION, answer=COT_CUE
    )


def idk_ids(model: object, batch: Batch, phrase: str = IDK_PHRASE) -> tuple[int, ...]:
    """Return the first-token ids of ``phrase`` (with and without a leading space).

    Ids that are also answer variants of the batch's candidates are left out.

    Raises:
        NasalensError: When no id is left.
    """
    tok = adapt(model).tokenizer
    ids = []
    for text in (phrase, " " + phrase):
        got = tok.encode(text, add_special_tokens=False)
        if got and got[0] not in ids and got[0] not in (*batch.pos_ids, *batch.neg_ids):
            ids.append(got[0])
    if not ids:
        raise NasalensError(
            f"the first token of {phrase!r} is also a candidate's answer token; pick another phrase"
        )
    return tuple(ids)


def three_way_logprobs(
    model: object,
    batch: Batch,
    extra_ids: Sequence[int],
    *,
    chunk_size: int = 16,
    progress: bool = True,
) -> Float[Tensor, "batch 3"]:
    """Return log P of the positive, negative and a third answer at each row's answer position.

    Each answer's probability sums its token ids in the full-vocabulary softmax, as
    `nasalens.metrics.answer_logprobs` does for the two candidates.

    Args:
        model: A model from `nasalens.load_model`.
        batch: Encoded samples of a binary template.
        extra_ids: First-token ids of the third answer (`idk_ids`).
        chunk_size: Rows per forward pass.
        progress: Show a progress bar.

    Returns:
        ``[batch, 3]``: columns positive, negative, third answer.
    """
    adapter = adapt(model)
    groups = [list(batch.pos_ids), list(batch.neg_ids), list(extra_ids)]
    out = torch.empty(len(batch), 3)
    total = math.ceil(len(batch) / chunk_size)
    with torch.no_grad():
        chunks = batch.chunks(chunk_size)
        for index, sub in tqdm(chunks, total=total, desc="idk", disable=not progress):
            logits = adapter.logits_at(sub.tokens, sub.attention_mask, sub.answer_pos)
            logp = logits.float().log_softmax(dim=-1)
            for col, ids in enumerate(groups):
                out[index, col] = logp[:, ids].logsumexp(dim=-1).cpu()
    return out


def parse_final_answer(text: str, candidates: tuple[str, str] = ("Yes", "No")) -> bool | None:
    """Read the final decision of a chain-of-thought answer.

    The last "answer is X" / "answer: X" (any case, quotes or asterisks allowed) wins; without
    one, the last candidate word standing alone in the text.

    Args:
        text: The generated reasoning.
        candidates: The (positive, negative) words.

    Returns:
        True for the positive, False for the negative candidate, None when neither is found.

    Example:
        >>> parse_final_answer("Paris is in France. So the answer is Yes.")
        True
    """
    words = "|".join(re.escape(c.strip()) for c in candidates)
    marker = re.compile(rf"answer\s*(?:is|:)\s*[\"'*]*\s*({words})(?!\w)", re.IGNORECASE)
    found = marker.findall(text) or re.findall(rf"(?<!\w)({words})(?!\w)", text, re.IGNORECASE)
    if not found:
        return None
    return found[-1].casefold() == candidates[0].strip().casefold()


@dataclass(frozen=True)
class Scenarios:
    """The decisions of one model under each prompting scenario.

    Attributes:
        per_sample: One row per scenario and sample: ``scenario``, ``id``, ``gold``, ``answer``
            (one of `ANSWERS`), ``has_context``, ``text`` (the chain of thought, else ""),
            ``category`` and ``confidence`` (from the knowledge categories).
    """

    per_sample: pd.DataFrame

    def __repr__(self) -> str:
        df = self.per_sample
        names = list(dict.fromkeys(df["scenario"]))
        return f"Scenarios({df['id'].nunique()} samples x {names})"

    def to_frame(self) -> pd.DataFrame:
        """Return the negative bias of each scenario per knowledge category ("all" included).

        Columns: ``scenario``, ``category``, ``n``, ``n_yes``, ``n_no``, ``n_idk``,
        ``n_unparsed``, ``share_yes``/``share_no``/``share_idk``/``share_unparsed`` (of n),
        ``n_answered`` (Yes or No), and over the answered samples ``accuracy``, ``precision``,
        ``recall`` and ``recall_minus_precision`` (negative when the model says No too often).
        ``n_context`` counts the samples that had a context to show.
        """
        frames = []
        for name, rows in self.per_sample.groupby("scenario", sort=False):
            frame = cells(rows, _bias, confidence=False)
            frame.insert(0, "scenario", name)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)


def _bias(rows: pd.DataFrame) -> dict:
    """Counts, shares and the bias over the answered rows of one cell."""
    n = len(rows)
    counts = {a: int((rows["answer"] == a).sum()) for a in ANSWERS}
    answered = rows[rows["answer"].isin(("yes", "no"))]
    table = classification(answered["gold"].astype(bool), answered["answer"] == "yes")
    out: dict = {"n": n, **{f"n_{a}": counts[a] for a in ANSWERS}}
    out.update({f"share_{a}": counts[a] / n if n else math.nan for a in ANSWERS})
    out.update(
        n_answered=len(answered),
        accuracy=table["accuracy"],
        precision=table["precision"],
        recall=table["recall"],
        recall_minus_precision=table["recall"] - table["precision"],
        n_context=int(rows["has_context"].sum()),
    )
    return out


def run_scenarios(
    model: object,
    samples: Sequence[Sample],
    *,
    knowledge: Knowledge | None = None,
    which: Sequence[Scenario] = SCENARIOS,
    cot_tokens: int = 128,
    chunk_size: int = 16,
    progress: bool = True,
) -> Scenarios:
    """Measure the negative bias of ``model`` under the sequel paper's prompting scenarios.

    - ``plain``: Prompt I (`nasalens.evaluate`).
    - ``context``: Prompt I with each sample's context before its question (StrategyQA facts,
      HotpotQA supporting sentences); samples without one are shown without (``n_context``).
    - ``idk``: Prompt I plus "If you do not know the answer, answer I don't know."; the
      decision is the argmax of Yes, No and the first token of "I don't know" at the answer
      position (`three_way_logprobs`).
    - ``cot``: Prompt I asking for step-by-step reasoning, decoded greedily for at most
      ``cot_tokens`` tokens; `parse_final_answer` reads the decision, and texts without one
      count as ``unparsed``.

    Args:
        model: A model from `nasalens.load_model` (base or tuned).
        samples: Yes/No samples.
        knowledge: Knowledge categories of the samples; None classifies them with this model.
        which: The scenarios to run.
        cot_tokens: Longest chain of thought in tokens.
        chunk_size: Rows per forward pass.
        progress: Show progress bars.

    Returns:
        The per-sample answers of every scenario; `Scenarios.to_frame` summarizes them.

    Raises:
        NasalensError: On an unknown scenario, ``cot_tokens`` below 1, or no samples.

    Example:
        >>> nasalens.analysis.run_scenarios(model, samples).to_frame()  # doctest: +SKIP
    """
    unknown = [w for w in which if w not in SCENARIOS]
    if unknown or not which:
        what = f"unknown scenarios {unknown}" if unknown else "no scenario given"
        raise NasalensError(f"{what}; use some of {SCENARIOS}")
    if cot_tokens < 1:
        raise NasalensError(f"cot_tokens must be at least 1, got {cot_tokens}")
    if not samples:
        raise NasalensError("no samples; pass at least one Sample")
    if knowledge is None:
        knowledge = classify_knowledge(model, samples, chunk_size=chunk_size, progress=progress)
    labels = knowledge.labels([s.id for s in samples])
    frames = []
    for name in which:
        answers, texts = _run(model, samples, name, cot_tokens, chunk_size, progress)
        frames.append(
            pd.DataFrame(
                {
                    "scenario": name,
                    "id": [s.id for s in samples],
                    "gold": [s.gold for s in samples],
                    "answer": answers,
                    "has_context": [name == "context" and bool(s.context) for s in samples],
                    "text": texts,
                    "category": labels["category"].to_numpy(),
                    "confidence": labels["confidence"].to_numpy(),
                }
            )
        )
    return Scenarios(pd.concat(frames, ignore_index=True))


def _run(
    model: object,
    samples: Sequence[Sample],
    name: Scenario,
    cot_tokens: int,
    chunk_size: int,
    progress: bool,
) -> tuple[list[str], list[str]]:
    """The answers (and chain-of-thought texts) of one scenario."""
    empty = [""] * len(samples)
    if name in ("plain", "context"):
        template = binary(use_context=name == "context")
        result = evaluate(
            model, samples, template=template, chunk_size=chunk_size, progress=progress
        )
        return ["yes" if d else "no" for d in result.per_sample["decision"]], empty
    if name == "idk":
        batch = encode(model, samples, template=idk_template())
        logp = three_way_logprobs(
            model, batch, idk_ids(model, batch), chunk_size=chunk_size, progress=progress
        )
        return [str(a) for a in decisions(logp)], empty
    texts = chain_of_thought(
        model, samples, max_new_tokens=cot_tokens, chunk_size=chunk_size, progress=progress
    )
    parsed = [parse_final_answer(t) for t in texts]
    answers = ["unparsed" if p is None else "yes" if p else "no" for p in parsed]
    logger.info("chain of thought: %d of %d unparsed", answers.count("unparsed"), len(answers))
    return answers, texts


def chain_of_thought(
    model: object,
    samples: Sequence[Sample],
    *,
    max_new_tokens: int = 128,
    chunk_size: int = 16,
    progress: bool = True,
) -> list[str]:
    """Generate a greedy chain of thought (`cot_template`) for each sample.

    Args:
        model: A model from `nasalens.load_model`.
        samples: The samples.
        max_new_tokens: Longest text in tokens; decoding stops earlier at the end of turn.
        chunk_size: Samples per decoding batch.
        progress: Show a progress bar.

    Returns:
        The decoded texts, stripped, in sample order.
    """
    adapter = adapt(model)
    tok = adapter.tokenizer
    batch = encode(model, samples, template=cot_template(), padding_side="left")
    texts = [""] * len(batch)
    total = math.ceil(len(batch) / chunk_size)
    chunks = tqdm(batch.chunks(chunk_size), total=total, desc="cot", disable=not progress)
    with torch.no_grad():
        for index, sub in chunks:
            new, _ = adapter.greedy(sub.tokens, sub.attention_mask, max_new_tokens)
            for j, row in enumerate(index.tolist()):
                ids = new[j].tolist()
                if tok.eos_token_id in ids:
                    ids = ids[: ids.index(tok.eos_token_id)]
                texts[row] = tok.decode(ids, skip_special_tokens=True).strip()
    return texts


def decisions(logprobs: Float[Tensor, "batch 3"]) -> np.ndarray:
    """Return the argmax answer of each row of `three_way_logprobs` ("yes", "no" or "idk")."""
    return np.array(ANSWERS[:3])[logprobs.argmax(dim=-1).numpy()]
