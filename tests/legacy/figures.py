"""The numbers that must agree between a TransformerBridge and a HookedTransformer of equal weights.

`figures(model)` computes them on any model type: NAS of every sample, layer and head (right and
left padding), the Yes-No logit difference at the answer position, clean and after ablating a
few heads (zero and mean), and one NASA training step of one head (loss, gradients and the
trained query/key slices, in the Hugging Face row layout ``[d_head, d_model]``).

TransformerLens 3.9 and 4 cannot share a process, so the bridge's side runs in the
TransformerLens 4 environment, as a module, and writes its figures to a file:

    python -m tests.legacy.figures MODEL_DIR|embedded OUT.safetensors
"""

from __future__ import annotations

import importlib.metadata as md
import sys
from pathlib import Path

import torch
from torch import Tensor

from nasalens.models import Head, ParamSlice, adapt, info, load_model
from nasalens.patching import ablation_hooks
from nasalens.prompts import binary, encode
from nasalens.scores import nas
from nasalens.tuning import train
from tests.builders import make_samples

#: Learning rate of the training step: large enough that each entry moves by about lr, far more
#: than the tolerance, so a step that went wrong cannot hide inside it.
LR = 1e-3
N_SAMPLES = 6


def plan(model: torch.nn.Module) -> tuple[list[Head], Head]:
    """The heads to ablate and the head to train: spread over the model's layers."""
    geo = info(model)
    last, mid = geo.n_layers - 1, geo.n_layers // 2
    ablated = [Head(0, 1), Head(mid, geo.n_heads - 2), Head(last, 0)]
    return ablated, Head(mid, geo.n_heads - 1)


def rows(piece: ParamSlice, tensor: Tensor) -> Tensor:
    """The slice of ``tensor`` as Hugging Face rows ``[d_head, d_model]``, whatever the layout.

    A bridge's slice already is (rows of ``q_proj``); a HookedTransformer's is one head of
    ``W_Q`` ``[1, d_model, d_head]``, the transpose.
    """
    part = tensor.detach()[piece.rows]
    return (part[0].T if part.ndim == 3 else part).clone()


def figures(model: torch.nn.Module) -> dict[str, Tensor]:
    """Compute every figure on ``model`` (it is not changed)."""
    adapter = adapt(model)
    samples = make_samples(N_SAMPLES)
    out: dict[str, Tensor] = {}
    for side in ("right", "left"):
        batch = encode(model, samples, template=binary(), padding_side=side)
        out[f"nas_{side}"] = nas(model, batch, progress=False).per_sample
    batch = encode(model, samples, template=binary())
    assert batch.pos_target is not None and batch.neg_target is not None
    ablated, trained = plan(model)
    for how in ("none", "zero", "mean"):
        hooks = [] if how == "none" else ablation_hooks(model, ablated, how=how, reference=batch)
        with torch.no_grad():
            logits = adapter.logits_at(batch.tokens, batch.attention_mask, batch.answer_pos, hooks)
        out[f"logit_diff_{how}"] = logits[:, batch.pos_target] - logits[:, batch.neg_target]

    tuned = adapt(adapter.clone())
    slices = list(tuned.qk_slices(trained))
    resid = train.residuals(tuned, batch, trained.layer, chunk_size=16)
    targets = torch.full((len(batch),), batch.pos_target)
    with train.trainable(tuned, slices) as params:
        opt = train.optimizer(params, LR)
        loss = train.answer_loss(tuned, resid, trained.layer, batch, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for name, piece in zip("qk", slices, strict=True):
            assert piece.param.grad is not None
            out[f"grad_{name}"] = rows(piece, piece.param.grad)
            out[f"start_{name}"] = rows(piece, piece.param)
        opt.step()
        for name, piece in zip("qk", slices, strict=True):
            out[f"tuned_{name}"] = rows(piece, piece.param)
    out["loss"] = loss.detach().reshape(1)
    return {k: v.detach().float().cpu().contiguous() for k, v in out.items()}


def describe(model: torch.nn.Module) -> dict[str, str]:
    """Which TransformerLens and model type computed the figures."""
    return {"transformer_lens": md.version("transformer-lens"), "model": type(model).__name__}


def main(argv: list[str]) -> None:
    """Load a model folder (or the embedded model) as this environment's default type, save."""
    from safetensors.torch import save_file

    source, target = argv
    model = load_model(None if source == "embedded" else Path(source))
    save_file(figures(model), target, metadata=describe(model))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1:])
