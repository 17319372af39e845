"""Prompts: templates (Prompt I and II, variants, k-shot, chat or plain) and encoding to batches."""

from nasalens.prompts.encoding import Batch, encode
from nasalens.prompts.templates import (
    CANDIDATES,
    INSTRUCTIONS,
    SHORT_ANSWER_INSTRUCTION,
    Rendered,
    Template,
    binary,
    short_answer,
)

__all__ = [
    "CANDIDATES",
    "INSTRUCTIONS",
    "SHORT_ANSWER_INSTRUCTION",
    "Batch",
    "Rendered",
    "Template",
    "binary",
    "encode",
    "short_answer",
]
