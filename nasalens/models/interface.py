"""The one small interface every model type satisfies: `ModelAdapter` and its parts.

A `ModelAdapter` gives geometry, tokenizer, hook names, hooked forward passes (including the
lean ones that skip the unembedding), and the per-head query/key parameter slices that tuning
trains. The rest of nasalens talks to models only through it; `nasalens.models.dispatch.adapt`
picks the adapter of a model (bridge.py, legacy.py build on this module, never the reverse).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from jaxtyping import Float, Int
from torch import Tensor

from nasalens.errors import NasalensError
from nasalens.models.geometry import Head, ModelInfo

HookFn = Callable[..., Tensor | None]
FwdHooks = Sequence[tuple[str | Callable[[str], bool], HookFn]]
HookKind = Literal["pattern", "attn_scores", "z", "q", "k", "v", "rot_q", "rot_k", "result"]


@runtime_checkable
class Tokenizer(Protocol):
    """What nasalens uses of a Hugging Face fast tokenizer."""

    bos_token_id: int | None
    pad_token_id: int | None
    eos_token_id: int | None

    def __call__(self, text: str, **kwargs: object) -> object: ...  # noqa: D102

    def encode(self, text: str, **kwargs: object) -> list[int]: ...  # noqa: D102

    def decode(self, ids: object, **kwargs: object) -> str: ...  # noqa: D102


@dataclass(frozen=True)
class ParamSlice:
    """Indices ``rows`` along dimension ``dim`` of parameter ``param`` (``name`` in the model).

    On a TransformerBridge these are rows of the Hugging Face ``q_proj``/``k_proj`` weight
    ``[n_heads * d_head, d_model]`` (dim 0), or a head's columns of ``o_proj``
    ``[d_model, n_heads * d_head]`` (dim 1); on a HookedTransformer the head index of
    ``W_Q``/``_W_K``/``W_O`` ``[n_heads, ...]`` (dim 0).
    """

    name: str
    param: torch.nn.Parameter = field(repr=False)
    rows: slice
    dim: int = 0

    @property
    def index(self) -> tuple[slice, ...]:
        """The slice as an index of the parameter (``param[s.index]`` is the trained part)."""
        return (slice(None),) * self.dim + (self.rows,)

    def mask(self) -> Tensor:
        """Return a 0/1 tensor shaped like the parameter, 1 on the slice."""
        mask = torch.zeros_like(self.param)
        mask[self.index] = 1
        return mask


class _Stop(Exception):
    """Raised inside a hook to end a forward pass early (caught by the adapter)."""


class ModelAdapter:
    """Operations nasalens needs from a model, independent of its type.

    Subclasses fill in how a type exposes its tokenizer, config and weights.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        # TransformerLens models expose cfg, blocks, hooks... dynamically; type them loosely.
        self.model: Any = model

    # ---- what each model type must say ----

    @property
    def info(self) -> ModelInfo:
        """The model's head geometry."""
        raise NotImplementedError

    @property
    def tokenizer(self) -> Tokenizer:
        """The model's tokenizer."""
        raise NotImplementedError

    def qk_slices(self, head: Head) -> tuple[ParamSlice, ParamSlice]:
        """Return the query rows of ``head`` and the key rows of the KV group it reads."""
        raise NotImplementedError

    def o_slice(self, head: Head) -> ParamSlice:
        """Return the output weights of ``head`` alone: what it writes, not where it looks."""
        raise NotImplementedError

    def clone(self) -> torch.nn.Module:
        """Return an independent deep copy of the model."""
        return copy.deepcopy(self.model)

    def hf_parameters(self) -> dict[str, torch.nn.Parameter]:
        """Return the trainable weights by their Hugging Face state-dict names.

        These are the names `ParamSlice.name` uses, e.g. ``model.layers.3.self_attn.q_proj.weight``;
        checkpoints and exports are keyed by them. Tied weights appear once. A legacy
        HookedTransformer has no Hugging Face model: it returns its own state-dict names
        (``blocks.3.attn.W_Q``) instead (`nasalens.models.legacy.HookedAdapter`).
        """
        raise NotImplementedError

    def hf_tensors(self) -> dict[str, Tensor]:
        """Return CPU copies of every weight, keyed as `hf_parameters` (for exports)."""
        return {
            n: p.detach().to("cpu", copy=True).contiguous() for n, p in self.hf_parameters().items()
        }

    @property
    def hf_config(self) -> object:
        """The Hugging Face config (a ``transformers.PretrainedConfig``), for exports."""
        raise NotImplementedError

    @property
    def split(self) -> bool:
        """Whether the weights are spread over several devices or offloaded (device maps)."""
        return False

    # ---- shared behaviour ----

    def hook_name(self, layer: int, kind: HookKind) -> str:
        """Return the hook point name, e.g. ``blocks.3.attn.hook_pattern``."""
        return f"blocks.{layer}.attn.hook_{kind}"

    def tokens_hook_name(self) -> str:
        """Return the hook point that sees each forward pass's token ids ``[batch, pos]``."""
        raise NotImplementedError

    @contextmanager
    def hooks(self, fwd_hooks: FwdHooks) -> Iterator[None]:
        """Attach forward hooks for the duration of the block; always remove them."""
        with self.model.hooks(fwd_hooks=list(fwd_hooks)):
            yield

    def run(
        self,
        tokens: Int[Tensor, "batch pos"],
        attention_mask: Int[Tensor, "batch pos"],
        fwd_hooks: FwdHooks = (),
        *,
        stop_at_layer: int | None = None,
    ) -> None:
        """Run a forward pass for its hooks only; stop before block ``stop_at_layer`` if given.

        Without ``stop_at_layer`` the pass stops before the final norm and unembedding, which
        nothing that only reads hooks needs.
        """
        n_layers = self.info.n_layers
        stop = n_layers if stop_at_layer is None else stop_at_layer
        if not 0 < stop <= n_layers:
            raise NasalensError(f"stop_at_layer={stop_at_layer} is outside 1..{n_layers}")
        stop_name = f"blocks.{stop - 1}.hook_resid_post"

        def halt(x: Tensor, hook: object) -> None:
            raise _Stop

        self._run_until(tokens, attention_mask, [*fwd_hooks, (stop_name, halt)])

    def final_resid(
        self,
        tokens: Int[Tensor, "batch pos"],
        attention_mask: Int[Tensor, "batch pos"],
        positions: Int[Tensor, " batch"],
        fwd_hooks: FwdHooks = (),
    ) -> Float[Tensor, "batch d_model"]:
        """Return the residual stream after the last block at one position per row."""
        store: dict[str, Tensor] = {}
        last = f"blocks.{self.info.n_layers - 1}.hook_resid_post"

        def grab(x: Tensor, hook: object) -> None:
            rows = torch.arange(x.shape[0], device=x.device)
            store["resid"] = x[rows, positions.to(x.device)]
            raise _Stop

        self._run_until(tokens, attention_mask, [*fwd_hooks, (last, grab)])
        return store["resid"]

    def unembed(self, resid: Float[Tensor, "batch d_model"]) -> Float[Tensor, "batch vocab"]:
        """Apply the final norm and the unembedding to residual vectors."""
        x = resid[:, None, :]
        return self.model.unembed(self.model.ln_final(x))[:, 0, :]

    def logits_at(
        self,
        tokens: Int[Tensor, "batch pos"],
        attention_mask: Int[Tensor, "batch pos"],
        positions: Int[Tensor, " batch"],
        fwd_hooks: FwdHooks = (),
    ) -> Float[Tensor, "batch vocab"]:
        """Return next-token logits at one position per row, unembedding only those rows."""
        return self.unembed(self.final_resid(tokens, attention_mask, positions, fwd_hooks))

    def resid_pre(
        self,
        tokens: Int[Tensor, "batch pos"],
        attention_mask: Int[Tensor, "batch pos"],
        layer: int,
        fwd_hooks: FwdHooks = (),
    ) -> Float[Tensor, "batch pos d_model"]:
        """Return the residual stream entering block ``layer``, running only the blocks below.

        With `forward_from` this splits a forward pass in two: while only block ``layer`` and
        above change (training one head), the lower part is computed once.
        """
        self._check_layer(layer)
        store: dict[str, Tensor] = {}

        def grab(x: Tensor, hook: object) -> None:
            store["resid"] = x
            raise _Stop

        name = f"blocks.{layer}.hook_resid_pre"
        self._run_until(tokens, attention_mask, [*fwd_hooks, (name, grab)])
        return store["resid"]

    def resid_pres(
        self,
        tokens: Int[Tensor, "batch pos"],
        attention_mask: Int[Tensor, "batch pos"],
        layers: Sequence[int],
    ) -> dict[int, Float[Tensor, "batch pos d_model"]]:
        """Return the residual entering each of ``layers`` from one pass (`resid_pre` for many).

        The pass stops at the last of them; the blocks below it run once, not once per layer.
        """
        wanted = sorted(set(layers))
        for layer in wanted:
            self._check_layer(layer)
        store: dict[int, Tensor] = {}

        def grab(x: Tensor, hook: object, layer: int) -> None:
            store[layer] = x
            if layer == wanted[-1]:
                raise _Stop

        hooks = [(f"blocks.{i}.hook_resid_pre", functools.partial(grab, layer=i)) for i in wanted]
        self._run_until(tokens, attention_mask, hooks)
        return store

    def forward_from(
        self,
        resid: Float[Tensor, "batch pos d_model"],
        layer: int,
        attention_mask: Int[Tensor, "batch pos"],
        positions: Int[Tensor, " batch"],
        fwd_hooks: FwdHooks = (),
    ) -> Float[Tensor, "batch d_model"]:
        """Run blocks ``layer``..L-1 on ``resid`` and return the final residual at ``positions``.

        Blocks below ``layer`` are not run at all. Gradients flow as in a full forward pass,
        and ``resid_pre`` followed by this gives the output of `final_resid`; apply `unembed`
        for logits.

        Args:
            resid: The residual stream entering block ``layer`` (from `resid_pre`).
            layer: The first block to run.
            attention_mask: 1 on real tokens, 0 on padding, as for the full pass.
            positions: One position per row to return.
            fwd_hooks: Hooks active during the pass (hooks below ``layer`` never fire).
        """
        raise NotImplementedError

    def _check_layer(self, layer: int) -> None:
        n_layers = self.info.n_layers
        if not 0 <= layer < n_layers:
            raise NasalensError(f"layer {layer} is outside 0..{n_layers - 1}")

    def greedy(
        self,
        tokens: Int[Tensor, "batch pos"],
        attention_mask: Int[Tensor, "batch pos"],
        max_new_tokens: int,
    ) -> tuple[Int[Tensor, "batch new"], Float[Tensor, "batch vocab"]]:
        """Decode greedily from left-padded prompts, without a cache (any model type).

        Token ids stay on the CPU between steps; each step's logits come back from whichever
        device the last layer is on.

        Returns:
            The new token ids (rows that ended early continue with the end-of-sequence id)
            and the logits of the first new token, on the CPU.
        """
        eos = self.tokenizer.eos_token_id
        tokens, attention_mask = tokens.cpu(), attention_mask.cpu()
        last = torch.full((tokens.shape[0],), tokens.shape[1] - 1)
        new: list[Tensor] = []
        first = None
        done = torch.zeros(tokens.shape[0], dtype=torch.bool)
        for _ in range(max_new_tokens):
            logits = self.logits_at(tokens, attention_mask, last).cpu()
            first = logits if first is None else first
            next_ids = logits.argmax(dim=-1)
            if eos is not None:
                next_ids = torch.where(done, torch.full_like(next_ids, eos), next_ids)
                done |= next_ids == eos
            new.append(next_ids)
            if done.all():
                break
            tokens = torch.cat([tokens, next_ids[:, None]], dim=1)
            attention_mask = torch.cat([attention_mask, torch.ones_like(attention_mask[:, :1])], 1)
            last = last + 1
        assert first is not None
        return torch.stack(new, dim=1), first

    def _run_until(self, tokens: Tensor, attention_mask: Tensor, fwd_hooks: FwdHooks) -> None:
        """Run the model with hooks; one of them ends the pass by raising `_Stop`."""
        device = self.device
        try:
            with self.hooks(fwd_hooks):
                self.model(tokens.to(device), attention_mask=attention_mask.to(device))
        except _Stop:
            return
        raise AssertionError("the stopping hook never fired")

    @property
    def device(self) -> torch.device:
        """Where token ids go (here: the device of the model's first parameter).

        With a model split over devices, a layer's activations may be elsewhere: hooks use
        the device of the tensor they receive, never this one (`BridgeAdapter.device`).
        """
        return next(self.model.parameters()).device
