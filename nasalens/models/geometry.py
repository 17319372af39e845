"""Head geometry: `Head(layer, head)` and `ModelInfo` (layers, heads, KV groups, widths).

These are plain values with no torch state, shared by every other module.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from nasalens.errors import NasalensError

_HEAD_RE = re.compile(r"^\s*L(\d+)\s*H(\d+)\s*$", re.IGNORECASE)


class Head(NamedTuple):
    """One attention head, printed as ``L17H7``."""

    layer: int
    head: int

    def __str__(self) -> str:
        return f"L{self.layer}H{self.head}"

    @classmethod
    def parse(cls, text: str) -> Head:
        """Parse ``"L17H7"`` into ``Head(17, 7)``.

        Raises:
            NasalensError: When the text is not of the form ``L<layer>H<head>``.
        """
        match = _HEAD_RE.match(text)
        if match is None:
            raise NasalensError(f"head {text!r} is not of the form 'L<layer>H<head>', e.g. 'L17H7'")
        return cls(int(match.group(1)), int(match.group(2)))


@dataclass(frozen=True)
class ModelInfo:
    """The geometry of a model's attention, in TransformerLens's vocabulary.

    Attributes:
        name: The model's name or path, as loaded.
        architecture: The Hugging Face architecture, e.g. ``LlamaForCausalLM``.
        n_layers: Number of transformer blocks.
        n_heads: Query heads per layer.
        n_kv_heads: Key/value heads per layer (equal to n_heads without grouped-query attention).
        d_model: Width of the residual stream.
        d_head: Width of one head.
        d_vocab: Vocabulary size.
        n_ctx: Maximum context length in tokens.
    """

    name: str
    architecture: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_head: int
    d_vocab: int
    n_ctx: int

    def __post_init__(self) -> None:
        """Check that query heads split evenly over KV heads."""
        if self.n_kv_heads < 1 or self.n_heads % self.n_kv_heads:
            raise NasalensError(
                f"model {self.name!r}: {self.n_heads} query heads do not split into "
                f"{self.n_kv_heads} KV heads"
            )

    @property
    def group_size(self) -> int:
        """Query heads that share one KV head (1 without grouped-query attention)."""
        return self.n_heads // self.n_kv_heads

    def kv_group(self, head: int) -> int:
        """Return the KV head that query head ``head`` reads: ``head // group_size``."""
        self.check_head(Head(0, head))
        return head // self.group_size

    def heads(self) -> Iterator[Head]:
        """Iterate over every head, layer by layer."""
        for layer in range(self.n_layers):
            for head in range(self.n_heads):
                yield Head(layer, head)

    def check_head(self, head: Head) -> Head:
        """Return ``head`` as a `Head` if it exists in this model.

        Raises:
            NasalensError: When the layer or head index is out of range.
        """
        layer, index = head
        if not (0 <= layer < self.n_layers and 0 <= index < self.n_heads):
            raise NasalensError(
                f"head L{layer}H{index} does not exist in {self.name!r} "
                f"({self.n_layers} layers x {self.n_heads} heads)"
            )
        return Head(int(layer), int(index))
