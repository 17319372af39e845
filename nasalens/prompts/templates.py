"""Prompt templates: the paper's Prompt I (binary decision) and II (short answer), variants.

A `Template` renders one `Sample` into the user-turn text and records, as character spans, where
the instruction and its two candidate words sit, so that encoding can localize them by offsets.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Literal

from nasalens.data.sample import Sample
from nasalens.errors import NasalensError, quote

InstructionName = Literal["nasa", "a", "b"]
CandidateName = Literal["yes_no", "true_false", "correct_wrong"]

#: The binary-decision instructions: the paper's (NASA) and the two variants of its Table 10.
INSTRUCTIONS: dict[str, str] = {
    "nasa": "You are given a question and you MUST answer {pos} or {neg}.",
    "a": "You are asked a question that demands a clear {pos} or {neg} answer.",
    "b": "A question is posed to you, and you are obligated to answer either {pos} or {neg}.",
}
#: Candidate word pairs (positive, negative) of the paper's Table 11.
CANDIDATES: dict[str, tuple[str, str]] = {
    "yes_no": ("Yes", "No"),
    "true_false": ("True", "False"),
    "correct_wrong": ("Correct", "Wrong"),
}
#: The paper's Prompt II instruction (short answers for the probing set).
SHORT_ANSWER_INSTRUCTION = "You MUST answer shortly the given question based on your knowledge."

Span = tuple[int, int]


@dataclass(frozen=True)
class Rendered:
    """One sample rendered as user-turn text, with character spans into ``text``.

    Attributes:
        text: The user-turn content.
        instruction: Span of the instruction (L_I is the first token after it).
        pos_cand: Span of the positive candidate word inside the instruction, if any.
        neg_cand: Span of the negative candidate word inside the instruction, if any.
    """

    text: str
    instruction: Span
    pos_cand: Span | None
    neg_cand: Span | None


@dataclass(frozen=True)
class Template:
    """How a sample becomes a prompt.

    Attributes:
        name: A short name for tables and errors.
        instruction: The instruction; ``{pos}``/``{neg}`` are replaced by the candidate words. An
            instruction without placeholders must contain the candidate words literally.
        candidates: The (positive, negative) candidate words, or None for short-answer prompts.
        question: Format of the question line; ``{question}`` is the sample's question.
        label: Format of the shown candidate answer, appended when the sample has a label.
        context: Format of the supporting context, used only when ``use_context`` is True.
        answer: The answer cue that ends the user text.
        separator: Joins instruction, shots, context and question.
        shots: Solved examples placed between the instruction and the question (k-shot).
        use_context: Include each sample's context.
        chat: Wrap the text in the tokenizer's chat template (user turn + generation prompt);
            False gives a plain prompt for base models; None uses the chat template when the
            tokenizer has one.
        system: A system message for the chat template; None keeps the template's default.
    """

    name: str = "binary"
    instruction: str = INSTRUCTIONS["nasa"]
    candidates: tuple[str, str] | None = CANDIDATES["yes_no"]
    question: str = "Question: {question}"
    label: str = " Is the answer {label}?"
    context: str = "Context: {context}"
    answer: str = "Answer:"
    separator: str = " "
    shots: tuple[Sample, ...] = field(default=())
    use_context: bool = False
    chat: bool | None = None
    system: str | None = None

    def __post_init__(self) -> None:
        """Check the placeholders and the candidate pair."""
        fields = _placeholders(self.instruction, self.name)
        unknown = fields - {"pos", "neg"}
        if unknown:
            raise NasalensError(
                f"template {quote(self.name)}: the instruction has unknown placeholders "
                f"{sorted(unknown)}; only {{pos}} and {{neg}} are allowed"
            )
        if self.candidates is not None:
            pos, neg = self.candidates
            if not (pos.strip() and neg.strip()) or pos.strip() == neg.strip():
                raise NasalensError(
                    f"template {quote(self.name)}: candidates must be two different non-empty "
                    f"words, got {quote(self.candidates)}"
                )
        elif fields:
            raise NasalensError(
                f"template {quote(self.name)}: the instruction uses {{pos}}/{{neg}} but "
                "candidates is None"
            )
        if _placeholders(self.question, self.name) != {"question"}:
            raise NasalensError(
                f"template {quote(self.name)}: question format must contain exactly {{question}}"
            )
        object.__setattr__(self, "shots", tuple(self.shots))

    def render(self, sample: Sample) -> Rendered:
        """Render ``sample`` as user-turn text with the instruction and candidate spans.

        Raises:
            NasalensError: When a candidate word is not in the instruction.
        """
        words = dict(zip(("pos", "neg"), self.candidates or ("", ""), strict=True))
        instruction, spans = _format_spans(self.instruction, words)
        pos_span, neg_span = spans.get("pos"), spans.get("neg")
        if self.candidates is not None:
            pos_span = pos_span or _find_word(instruction, self.candidates[0])
            neg_span = neg_span or _find_word(instruction, self.candidates[1])
            for word, span in zip(self.candidates, (pos_span, neg_span), strict=True):
                if span is None:
                    raise NasalensError(
                        f"sample {quote(sample.id)}: candidate {quote(word)} is not in the "
                        f"instruction of template {quote(self.name)}; put it in the instruction "
                        "(or use {pos}/{neg}), or pass candidates that the instruction uses"
                    )
        parts = [instruction]
        parts += [self._body(shot, with_answer=True) for shot in self.shots]
        parts.append(self._body(sample, with_answer=False))
        return Rendered(self.separator.join(parts), (0, len(instruction)), pos_span, neg_span)

    def _body(self, sample: Sample, *, with_answer: bool) -> str:
        """The context, question, shown label and answer cue of one sample."""
        parts = []
        if self.use_context and sample.context:
            parts.append(self.context.format(context=sample.context))
        text = self.question.format(question=sample.question)
        if sample.label is not None and self.candidates is not None:
            text += self.label.format(label=sample.label)
        parts.append(text)
        cue = self.answer
        if with_answer:
            if self.candidates is not None:
                cue += " " + self.candidates[0 if sample.gold else 1]
            elif sample.answers:
                cue += " " + sample.answers[0]
        parts.append(cue)
        return self.separator.join(parts)


def binary(
    instruction: InstructionName | str = "nasa",
    candidates: CandidateName | tuple[str, str] = "yes_no",
    *,
    shots: tuple[Sample, ...] = (),
    chat: bool | None = None,
    use_context: bool = False,
) -> Template:
    """Return a binary-decision template (the paper's Prompt I by default).

    Args:
        instruction: "nasa" (the paper's), "a", "b" (its variants), or an instruction text.
        candidates: "yes_no", "true_false", "correct_wrong", or a (positive, negative) pair.
        shots: Solved examples for k-shot prompting.
        chat: Use the tokenizer's chat template (None: when it has one).
        use_context: Include each sample's context before its question.

    Returns:
        The template; its name records the choices, e.g. ``binary-a-true_false-4shot``.

    Example:
        >>> binary("b", "true_false").render(Sample("s", "Is 2+2 4?", True)).text
        'A question is posed to you, and you are obligated to answer either True or False. Question: Is 2+2 4? Answer:'
    """  # noqa: E501
    pair = CANDIDATES.get(candidates, None) if isinstance(candidates, str) else candidates
    if pair is None:
        raise NasalensError(
            f"unknown candidate pair {quote(candidates)}; use one of {sorted(CANDIDATES)} or a "
            "(positive, negative) tuple"
        )
    text = INSTRUCTIONS.get(instruction, instruction)
    name = "binary" if text == INSTRUCTIONS["nasa"] else f"binary-{instruction}"
    if text not in INSTRUCTIONS.values():
        name = "binary-custom"
    if isinstance(candidates, str) and candidates != "yes_no":
        name += f"-{candidates}"
    elif not isinstance(candidates, str) and tuple(pair) != CANDIDATES["yes_no"]:
        name += f"-{pair[0]}_{pair[1]}"
    if shots:
        name += f"-{len(shots)}shot"
    if use_context:
        name += "-context"
    return Template(
        name=name,
        instruction=text,
        candidates=(str(pair[0]), str(pair[1])),
        shots=tuple(shots),
        chat=chat,
        use_context=use_context,
    )


def short_answer(*, chat: bool | None = None, shots: tuple[Sample, ...] = ()) -> Template:
    """Return the paper's Prompt II: answer the question shortly, no candidates."""
    return Template(
        name="short_answer",
        instruction=SHORT_ANSWER_INSTRUCTION,
        candidates=None,
        shots=tuple(shots),
        chat=chat,
    )


def _placeholders(fmt: str, name: str) -> set[str]:
    try:
        return {f for _, f, _, _ in string.Formatter().parse(fmt) if f is not None}
    except ValueError as err:
        raise NasalensError(
            f"template {quote(name)}: bad format string {quote(fmt)} ({err})"
        ) from err


def _format_spans(fmt: str, values: dict[str, str]) -> tuple[str, dict[str, Span]]:
    """Format ``fmt`` and return where each substituted field landed."""
    out, spans = [], {}
    pos = 0
    for literal, name, _, _ in string.Formatter().parse(fmt):
        out.append(literal)
        pos += len(literal)
        if name is not None:
            value = values[name]
            spans[name] = (pos, pos + len(value))
            out.append(value)
            pos += len(value)
    return "".join(out), spans


def _find_word(text: str, word: str) -> Span | None:
    """Span of the first whole-word occurrence of ``word`` in ``text``, or None."""
    match = re.search(rf"(?<!\w){re.escape(word.strip())}(?!\w)", text)
    return match.span() if match else None
