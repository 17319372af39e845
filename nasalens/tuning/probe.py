"""The probing set of NASA: facts the model knows, split into TP, FN (train) and V.

A question is *known* when the model's greedy short answer (the paper's Prompt II) matches a
gold alias (`nasalens.data.answers.matches`: normalization, number words, the last-number rule).
Each known fact becomes a positive binary sample ("Is the answer {gold}?", expected Yes); the
model's decision splits them into TP (it says Yes) and FN (it says No). A seeded part of FN is
held out as the validation set V; the rest is the training set. tau, the smallest model NAS
over TP, is computed by `nasalens.tuning.nasa.threshold` with the run's settings.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from nasalens.artifacts import read_json, write_json
from nasalens.data.answers import matches
from nasalens.data.sample import Question, Sample
from nasalens.deprecation import dropped_arguments
from nasalens.errors import NasalensError
from nasalens.generation import require_known, short_answers
from nasalens.metrics import evaluate
from nasalens.prompts import binary

logger = logging.getLogger(__name__)

#: What tau is when TP is empty (the embedded model says "No" to every fact it knows).
EMPTY_TP_RULE = (
    "TP is empty, so tau = -inf: early halting on model NAS never fires and every head is "
    "tuned (pass halting='share_yes' for a rule that needs no TP)"
)


@dataclass(frozen=True, eq=False)
class ProbeSet:
    """A model's probing set for NASA.

    Attributes:
        train: FN samples NASA fine-tunes on (known facts the model answers "No").
        val: FN samples held out as the validation set V.
        tp: Known facts the model answers "Yes" (NASA's tau is their smallest model NAS).
        n_questions: Questions asked.
        answers: One row per question: id, answer, known, and for known ones decision
            ("tp"/"fn") and p_yes.
        seed: Seed of the V split.
        val_fraction: Share of FN held out as V.
    """

    train: tuple[Sample, ...]
    val: tuple[Sample, ...]
    tp: tuple[Sample, ...]
    n_questions: int
    answers: pd.DataFrame
    seed: int = 0
    val_fraction: float = 0.2

    @property
    def fn(self) -> tuple[Sample, ...]:
        """All FN samples: training set and V."""
        return self.train + self.val

    def counts(self) -> dict[str, int]:
        """Questions, known facts, TP, FN, train and V sizes."""
        return {
            "questions": self.n_questions,
            "known": len(self.tp) + len(self.fn),
            "tp": len(self.tp),
            "fn": len(self.fn),
            "train": len(self.train),
            "val": len(self.val),
        }

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}={v}" for k, v in self.counts().items())
        return f"ProbeSet({parts})"

    def save(self, path: str | Path) -> None:
        """Write the probing set (samples, counts, answers) as one JSON file."""
        payload = {
            "counts": self.counts(),
            "seed": self.seed,
            "val_fraction": self.val_fraction,
            "n_questions": self.n_questions,
            "train": [dataclasses.asdict(s) for s in self.train],
            "val": [dataclasses.asdict(s) for s in self.val],
            "tp": [dataclasses.asdict(s) for s in self.tp],
            "answers": self.answers.to_dict(orient="records"),
        }
        write_json(path, payload)

    @classmethod
    def load(cls, path: str | Path) -> ProbeSet:
        """Read a probing set written by `save` (older files' ``tau``, region, eps are ignored).

        Raises:
            NasalensError: When the file is missing or malformed.
        """
        payload = read_json(path)
        try:
            assert isinstance(payload, dict)

            def samples(key: str) -> tuple[Sample, ...]:
                return tuple(
                    Sample(**{**row, "answers": tuple(row.get("answers") or ())})
                    for row in payload[key]
                )

            return cls(
                train=samples("train"),
                val=samples("val"),
                tp=samples("tp"),
                n_questions=int(payload["n_questions"]),
                answers=pd.DataFrame(payload["answers"]),
                seed=int(payload["seed"]),
                val_fraction=float(payload.get("val_fraction", 0.2)),
            )
        except (AssertionError, KeyError, TypeError) as err:
            raise NasalensError(
                f"{path}: not a probing set written by ProbeSet.save ({err!r})"
            ) from err


@dropped_arguments("region", "eps", why="tau is computed once, by nasa(), with its config")
def probe_set(
    model: object,
    questions: Sequence[Question],
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    max_new_tokens: int = 16,
    chunk_size: int = 16,
    knowledge_model: object | None = None,
    progress: bool = True,
) -> ProbeSet:
    """Build the probing set: what the model knows, split into TP, FN train and V.

    Args:
        model: A model from `nasalens.load_model`.
        questions: Short-answer questions with gold aliases (e.g.
            ``nasalens.data.builtin_questions("probe")``).
        val_fraction: Share of FN held out as V (at least one sample when FN has two or more).
        seed: Seed of the V split.
        max_new_tokens: Longest short answer.
        chunk_size: Rows per forward pass.
        knowledge_model: The model whose greedy answers decide what is known; default: ``model``
            itself (the paper). A base model can stand in when a bias leaks into short answers
            too: the planted organism answers "No, the answer is not available." to 32 of
            NASA's 52 facts, which its base model answers right (the organism runs in
            docs/results.md use the default, so 20 facts).
        progress: Show progress bars.

    Returns:
        The probing set; ``.counts()`` gives its sizes. When TP is empty a warning says what
        that means for tau (`EMPTY_TP_RULE`).

    Raises:
        NasalensError: When no questions are given, ``val_fraction`` is not in (0, 1), or the
            model knows none of 20 or more questions (`nasalens.generation.require_known`:
            usually broken decoding, which would otherwise give an empty probing set).

    Example:
        >>> questions = nasalens.data.builtin_questions("probe")
        >>> probe = nasalens.probe_set(model, questions)  # doctest: +SKIP
        >>> probe.counts()                                 # doctest: +SKIP
    """
    if not questions:
        raise NasalensError("probe_set: no questions; pass short-answer Questions with answers")
    if not 0 < val_fraction < 1:
        raise NasalensError(f"val_fraction={val_fraction}: use a share in (0, 1), e.g. 0.2")
    positives = [q.positive() for q in questions]
    frame = short_answers(
        model if knowledge_model is None else knowledge_model,
        positives,
        max_new_tokens=max_new_tokens,
        chunk_size=chunk_size,
        progress=progress,
    )
    frame["known"] = [
        matches(str(answer), q.answers)
        for answer, q in zip(frame["answer"], questions, strict=True)
    ]
    known = [s for s, k in zip(positives, frame["known"], strict=True) if k]
    require_known(
        model if knowledge_model is None else knowledge_model,
        positives,
        list(frame["answer"]),
        len(known),
        what="probe_set",
    )
    frame["decision"] = None
    frame["p_yes"] = float("nan")
    tp: list[Sample] = []
    fn: list[Sample] = []
    if known:
        result = evaluate(model, known, template=binary(), chunk_size=chunk_size, progress=progress)
        decided = result.per_sample.set_index("id")
        for s in known:
            said_yes = bool(decided.loc[s.id, "decision"])
            (tp if said_yes else fn).append(s)
        by_id = frame.set_index("id")
        by_id.loc[decided.index, "p_yes"] = decided["p_yes"]
        by_id.loc[[s.id for s in tp], "decision"] = "tp"
        by_id.loc[[s.id for s in fn], "decision"] = "fn"
        frame = by_id.reset_index()
    val_ids = _split(fn, val_fraction, seed)
    val = tuple(s for s in fn if s.id in val_ids)
    train = tuple(s for s in fn if s.id not in val_ids)
    if not tp:
        logger.warning("probing set: %s", EMPTY_TP_RULE)
    probe = ProbeSet(train, val, tuple(tp), len(questions), frame, seed, val_fraction)
    logger.info("probing set: %s", probe)
    return probe


def _split(fn: Sequence[Sample], val_fraction: float, seed: int) -> set[str]:
    """Ids of the seeded V: ``round(val_fraction * |FN|)`` samples, at least 1 when |FN| >= 2."""
    if len(fn) < 2:
        return set()
    n_val = min(len(fn) - 1, max(1, round(val_fraction * len(fn))))
    chosen = random.Random(seed).sample(range(len(fn)), n_val)
    return {fn[i].id for i in chosen}
