"""Head geometry: `Head(layer, head)` and `ModelInfo` (layers, heads, KV groups, widths).

These are plain values with no torch state, shared by every other module.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple, TypeAlias

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

    @classmethod
    def coerce(cls, head: object) -> Head:
        """Return ``head`` as a `Head`: a `Head`, a name like ``"L17H7"`` or ``(layer, head)``.

        This is the one place heads given by a user are read; every function that takes heads
        accepts all three forms through it.

        Raises:
            NasalensError: When ``head`` is none of the three forms (the message shows it).
        """
        if isinstance(head, str):
            return cls.parse(head)
        if isinstance(head, tuple) and len(head) == 2:
            layer, index = head
            if all(isinstance(x, int) and not isinstance(x, bool) for x in (layer, index)):
                return cls(int(layer), int(index))
            if all(hasattr(x, "__index__") and not isinstance(x, bool) for x in (layer, index)):
                return cls(int(layer.__index__()), int(index.__index__()))  # numpy/torch ints
        shown = repr(head)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise NasalensError(
            f"head {shown} is not a head: use Head(layer, head), a name like 'L17H7' or a "
            "(layer, head) pair of integers"
        )


#: What every function taking heads accepts for one head.
HeadLike: TypeAlias = Head | str | tuple[int, int]


def as_heads(heads: object) -> list[Head]:
    """Return ``heads`` as a list of `Head`s, checking each form and that none repeats.

    A single head (a `Head` or a name) is accepted as a list of one. Use
    `ModelInfo.check_heads` when the model is known, to check the ranges too.

    Raises:
        NasalensError: When an item is not a head, or a head appears twice.
    """
    if isinstance(heads, str) or (
        isinstance(heads, tuple) and len(heads) == 2 and not isinstance(heads[0], tuple | str)
    ):
        heads = [heads]
    try:
        items = list(heads)  # type: ignore[call-overload]
    except TypeError as err:
        raise NasalensError(
            f"heads must be a list of heads (Head, 'L17H7' or (layer, head)), got "
            f"{type(heads).__name__}"
        ) from err
    checked = [Head.coerce(h) for h in items]
    counts = Counter(checked)
    dup = next((h for h in checked if counts[h] > 1), None)
    if dup is not None:
        raise NasalensError(f"head {dup} appears twice; list each head once")
    return checked


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

    def check_head(self, head: object) -> Head:
        """Return ``head`` as a `Head` if it exists in this model.

        Raises:
            NasalensError: When ``head`` is not a head, or the layer or head index is out of
                range.
        """
        layer, index = Head.coerce(head)
        if not (0 <= layer < self.n_layers and 0 <= index < self.n_heads):
            raise NasalensError(
                f"head L{layer}H{index} does not exist in {self.name!r} "
                f"({self.n_layers} layers x {self.n_heads} heads)"
            )
        return Head(int(layer), int(index))

    def check_heads(self, heads: object) -> list[Head]:
        """Return ``heads`` as `Head`s after checking the form, the range and repeats.

        Raises:
            NasalensError: When an item is not a head, does not exist in this model, or repeats.
        """
        return [self.check_head(h) for h in as_heads(heads)]
