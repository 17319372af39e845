"""Inference-time baselines to compare NASA with: wrapped models that `evaluate()` accepts.

`HeadFix` ablates or re-weights the selected heads while answering; `ContextualCalibration`
(Zhao et al. 2021) divides the decision by the prior the model shows on content-free inputs.
Both implement the `nasalens.metrics.Decider` protocol.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from nasalens.data.sample import Sample
from nasalens.errors import NasalensError
from nasalens.metrics import Decider, answer_logprobs
from nasalens.models import HeadLike, adapt
from nasalens.models.interface import FwdHooks
from nasalens.patching import (
    ABLATIONS,
    ATTENTION_KINDS,
    AttentionKind,
    ablation_hooks,
    attention_hooks,
)
from nasalens.patching.ablation import check_how
from nasalens.prompts import Batch, Template, binary, encode

logger = logging.getLogger(__name__)

FixKind = Literal["zero", "mean", "resample", "move", "equalize"]
PriorAverage = Literal["probability", "logodds"]
FIX_KINDS: tuple[str, ...] = (*ABLATIONS, *ATTENTION_KINDS)
#: The content-free inputs of Zhao et al. (2021).
CONTENT_FREE: tuple[str, ...] = ("N/A", "", "[MASK]")


class HeadFix:
    """A model whose selected heads are ablated or re-weighted while it answers.

    Ablations ("zero", "mean", "resample") replace the heads' output as in
    `nasalens.patching.ablate`; "move" and "equalize" shift each head's attention from the
    negative to the positive candidate as in `nasalens.patching.move_attention`.

    Args:
        model: A model from `nasalens.load_model`.
        heads: The heads to fix, e.g. from `nasalens.negative_heads`.
        how: The fix.
        reference: What "mean" averages over and "resample" draws from (required for them).
        fraction: Share of the negative candidate's attention that "move" moves.
        seed: Seed of "resample".

    Raises:
        NasalensError: On an unknown ``how``, a head outside the model, or "mean"/"resample"
            without a reference.

    Example:
        >>> fixed = nasalens.baselines.HeadFix(model, heads, how="equalize")  # doctest: +SKIP
        >>> nasalens.evaluate(fixed, samples)                                 # doctest: +SKIP
    """

    def __init__(
        self,
        model: torch.nn.Module,
        heads: Sequence[HeadLike],
        *,
        how: FixKind = "mean",
        reference: Batch | Sequence[Sample] | None = None,
        fraction: float = 1.0,
        seed: int = 0,
    ) -> None:
        check_how(how, FIX_KINDS, "head fix")
        self.model = model
        self.heads = tuple(adapt(model).info.check_heads(heads))
        self.how = how
        self.fraction = fraction
        self._ablation: FwdHooks | None = None
        self._attention: AttentionKind | None = None
        if how == "move" or how == "equalize":
            self._attention = how
        else:
            if how != "zero" and reference is None:
                raise NasalensError(
                    f"HeadFix(how={how!r}) needs reference=: the samples whose activations "
                    "the heads are set to; or use how='zero', 'move' or 'equalize'"
                )
            hooks = ablation_hooks(model, self.heads, how=how, reference=reference, seed=seed)
            self._ablation = hooks

    def __repr__(self) -> str:
        return f"HeadFix({len(self.heads)} heads, how={self.how!r})"

    def hooks(self, batch: Batch) -> FwdHooks:
        """The hooks that fix the heads on ``batch``."""
        if self._attention is None:
            assert self._ablation is not None
            return self._ablation
        return attention_hooks(
            self.model, self.heads, batch, how=self._attention, fraction=self.fraction
        )

    def answer_logprobs(
        self, batch: Batch, *, chunk_size: int = 16, progress: bool = True
    ) -> Float[Tensor, "batch 2"]:
        """Return log P(positive), log P(negative) with the heads fixed (see `Decider`)."""
        return answer_logprobs(
            self.model,
            batch,
            chunk_size=chunk_size,
            progress=progress,
            fwd_hooks=self.hooks(batch),
        )


class ContextualCalibration:
    """Contextual calibration (Zhao et al. 2021) of the Yes/No decision.

    What is calibrated: the two-candidate distribution ``q = (P(pos), P(neg)) / (P(pos) +
    P(neg))`` at the answer position, each candidate's probability summing its answer-token
    variants as in `nasalens.evaluate`. The prior ``q_cf`` averages ``q`` over the
    content-free questions (``content_free``), rendered with the same template as the batch
    (and with the content-free text as the shown label when the batch's samples show one):
    the mean probability as in Zhao et al. (``average="probability"``), or the renormalized
    geometric mean (``average="logodds"``, the mean log-odds). A bias that adds a constant to
    every log-odds is removed exactly with "logodds", or with a single content-free input.
    The calibrated decision is ``q_cal ∝ q / q_cf`` (Zhao et al.'s ``W = diag(q_cf)^-1``,
    ``b = 0``): the log-odds move by ``-log(q_cf_pos / q_cf_neg)``, the same shift for every
    sample of a template. The returned log-probabilities are those of ``q_cal``, so they sum
    to 1 over the two candidates (`evaluate` then reports ``cand_mass`` 1).

    Args:
        model: A model from `nasalens.load_model`, or another `Decider` (e.g. a `HeadFix`).
        template: The template whose prior is estimated up front (others: on first use).
        content_free: The content-free question texts.
        average: How the content-free inputs' ``q`` are averaged into ``q_cf``.

    Raises:
        NasalensError: When ``content_free`` is empty or ``average`` unknown.

    Example:
        >>> calibrated = nasalens.baselines.ContextualCalibration(model)  # doctest: +SKIP
        >>> nasalens.evaluate(calibrated, samples)                        # doctest: +SKIP
    """

    def __init__(
        self,
        model: object,
        *,
        template: Template | None = None,
        content_free: Sequence[str] = CONTENT_FREE,
        average: PriorAverage = "probability",
    ) -> None:
        if not content_free:
            raise NasalensError("content_free is empty; pass texts such as ('N/A', '', '[MASK]')")
        check_how(average, ("probability", "logodds"), "prior average")
        self.average = average
        self.inner = model
        base = model.model if isinstance(model, Decider) else model
        if not isinstance(base, torch.nn.Module):
            raise NasalensError(f"expected a model or a Decider, got {type(model).__name__}")
        self.model = base
        self.content_free = tuple(content_free)
        self._priors: dict[tuple[Template, bool], Tensor] = {}
        self.prior(template or binary())

    def __repr__(self) -> str:
        return f"ContextualCalibration({len(self.content_free)} content-free inputs)"

    def prior(self, template: Template, *, labelled: bool = True) -> Float[Tensor, " 2"]:
        """Return ``q_cf``: P(positive), P(negative) on content-free questions (sums to 1).

        Args:
            template: The template the questions are rendered with.
            labelled: Show the content-free text as the candidate answer too ("Is the answer
                N/A?"), as for samples with a label.
        """
        key = (template, labelled)
        if key not in self._priors:
            samples = [_content_free(i, text, labelled) for i, text in enumerate(self.content_free)]
            batch = encode(self.model, samples, template=template)
            two_way = _two_way(answer_logprobs(self.inner, batch, progress=False))
            if self.average == "probability":
                self._priors[key] = two_way.exp().mean(dim=0)
            else:
                self._priors[key] = _two_way(two_way.mean(dim=0, keepdim=True))[0].exp()
            logger.info("content-free prior of %s: %s", template.name, self._priors[key])
        return self._priors[key]

    def answer_logprobs(
        self, batch: Batch, *, chunk_size: int = 16, progress: bool = True
    ) -> Float[Tensor, "batch 2"]:
        """Return the calibrated log q_cal(positive), log q_cal(negative) (see the class)."""
        raw = answer_logprobs(self.inner, batch, chunk_size=chunk_size, progress=progress)
        labelled = torch.tensor([s.label is not None for s in batch.samples])
        prior = torch.stack([self.prior(batch.template, labelled=bool(x)) for x in labelled])
        return _two_way(_two_way(raw) - prior.log())


def _two_way(logprobs: Tensor) -> Tensor:
    """Renormalize log-probabilities over the two candidates."""
    return logprobs - logprobs.logsumexp(dim=1, keepdim=True)


def _content_free(index: int, text: str, labelled: bool) -> Sample:
    """A sample whose question (and label) is the content-free ``text``, which may be empty.

    `Sample` rejects empty questions, as real data must have one; the content-free input ""
    is the one place nasalens renders an empty question, so the check is skipped here.
    """
    sample = object.__new__(Sample)
    fields = {
        "id": f"content-free-{index}",
        "question": text,
        "gold": True,
        "label": text if labelled else None,
        "source": "content-free",
        "context": None,
        "answers": (),
    }
    for name, value in fields.items():
        object.__setattr__(sample, name, value)
    return sample
