"""The adapter of TransformerLens 4.x `TransformerBridge` models (the default model type).

Hook names, the lean forward passes, block-level partial passes for layer skipping, the
per-head query/key rows in the Hugging Face weights, a clone that does not share the
bridge's capture hook, and where the weights are when accelerate split or offloaded them.
"""

from __future__ import annotations

import copy
import logging
from functools import cached_property
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformers import GenerationConfig

from nasalens.models.geometry import Head, ModelInfo
from nasalens.models.interface import FwdHooks, ModelAdapter, ParamSlice, Tokenizer, _Stop

log = logging.getLogger(__name__)


def execution_device(module: torch.nn.Module) -> torch.device:
    """The device ``module`` computes on: its accelerate hook's, else its first real weight's.

    Under a device map, accelerate hooks each placed module and moves its inputs there;
    offloaded weights are meta placeholders until a forward needs them, so their device says
    nothing. CPU when nothing tells.
    """
    for sub in module.modules():
        pending = [getattr(sub, "_hf_hook", None)]
        while pending:
            hook = pending.pop()
            pending.extend(getattr(hook, "hooks", ()))  # accelerate's SequentialHook
            where = getattr(hook, "execution_device", None)
            if where is not None:
                return torch.device(f"cuda:{where}" if isinstance(where, int) else where)
    for tensor in [*module.parameters(), *module.buffers()]:
        if not tensor.is_meta:
            return tensor.device
    return torch.device("cpu")


class BridgeAdapter(ModelAdapter):
    """A TransformerLens 4 `TransformerBridge` around a Hugging Face causal LM."""

    @property
    def device(self) -> torch.device:
        """Where token ids go: the input embedding's execution device.

        With a split model every layer may compute elsewhere; hooks use the device of the
        tensor they receive, never this one.
        """
        return execution_device(self.model.original_model.get_input_embeddings())

    @property
    def split(self) -> bool:
        """Whether accelerate spread the weights over several devices or offloaded some."""
        placed = getattr(self.model.original_model, "hf_device_map", None) or {}
        where = {str(v) for v in placed.values()}
        return len(where) > 1 or "disk" in where or any(p.is_meta for p in self.model.parameters())

    @cached_property
    def info(self) -> ModelInfo:
        """The bridge's head geometry, read from its config."""
        cfg = self.model.cfg
        n_heads = int(cfg.n_heads)
        return ModelInfo(
            name=str(getattr(cfg, "model_name", None) or "model"),
            architecture=str(getattr(cfg, "architecture", None) or type(self.model).__name__),
            n_layers=int(cfg.n_layers),
            n_heads=n_heads,
            n_kv_heads=int(getattr(cfg, "n_key_value_heads", None) or n_heads),
            d_model=int(cfg.d_model),
            d_head=int(cfg.d_head),
            d_vocab=int(cfg.d_vocab),
            n_ctx=int(cfg.n_ctx),
        )

    @property
    def tokenizer(self) -> Tokenizer:
        """The tokenizer the bridge was booted with."""
        return self.model.tokenizer

    def tokens_hook_name(self) -> str:
        """The bridge's embedding input, ``embed.hook_in``."""
        return "embed.hook_in"

    def greedy(
        self,
        tokens: Int[Tensor, "batch pos"],
        attention_mask: Int[Tensor, "batch pos"],
        max_new_tokens: int,
    ) -> tuple[Int[Tensor, "batch new"], Float[Tensor, "batch vocab"]]:
        """Decode greedily with a key-value cache, through Hugging Face's own ``generate``.

        The bridge's cached decoding passes the cache to each block as ``past_key_values``;
        transformers 5.24 renamed that argument to ``cache``, and TransformerLens 4.3's
        attention then silently decodes without context (wrong tokens, no error). So the
        bridge's weights are lent to a bare Hugging Face model of the same class (`_hf_twin`:
        same tensors, no copy) whose ``generate`` owns its cache. Hooks are part of the
        model a caller asked for: while any hook is attached to the bridge, decoding runs
        through the bridge without a cache (`ModelAdapter.greedy`), so they apply. So does a
        split or offloaded model (`split`): the twin would have no accelerate hooks to move
        activations between devices or to bring offloaded weights in.

        Returns:
            The new token ids and the logits of the first new token, as `ModelAdapter.greedy`.
        """
        twin: Any = None if self._hooks_attached() or self.split else self._hf_twin()
        if twin is None:
            return super().greedy(tokens, attention_mask, max_new_tokens)
        eos = self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id
        config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=eos if pad is None else pad,
            output_logits=True,
            return_dict_in_generate=True,
        )
        out = twin.generate(
            tokens.to(self.device),
            attention_mask=attention_mask.to(self.device),
            generation_config=config,
        )
        new = out.sequences[:, tokens.shape[1] :].cpu()
        if eos is not None:  # rows that ended early continue with eos, as without a cache
            ended = (new == eos).cumsum(dim=1) > 0
            new = new.masked_fill(ended, eos)
        return new, out.logits[0].cpu()

    def _hooks_attached(self) -> bool:
        """Whether any TransformerLens hook is attached to the bridge right now."""
        return any(
            point._forward_hooks or point._backward_hooks for point in self.model.hook_dict.values()
        )

    def _hf_twin(self) -> Any:
        """A bare Hugging Face model of the bridge's class that holds the bridge's tensors.

        Built on the meta device, then given the bridge's own parameters and buffers (no
        copy: later weight edits show through). None, with a log line, when some weight has
        no counterpart (then decoding falls back to the bridge without a cache).
        """
        from transformers import AutoModelForCausalLM

        original = self.model.original_model
        with torch.device("meta"):
            twin = AutoModelForCausalLM.from_config(original.config)
        twin.load_state_dict(self.hf_parameters(), assign=True, strict=False)
        twin.tie_weights()
        for name, buffer in original.named_buffers():
            module, _, leaf = name.replace("._original_component", "").rpartition(".")
            owner = twin.get_submodule(module)
            if leaf in owner._buffers:
                owner._buffers[leaf] = buffer
        on_meta = [n for n, t in [*twin.named_parameters(), *twin.named_buffers()] if t.is_meta]
        if on_meta:
            log.warning("decoding without a cache: no bridge weight for %s", on_meta[:3])
            return None
        return twin.eval()

    def clone(self) -> torch.nn.Module:
        """Return an independent deep copy of the bridge.

        A plain ``copy.deepcopy`` of a TransformerBridge (TransformerLens 4.3) copies each
        block's ln1 capture pre-hook by reference, and the hook holds a weak proxy to the
        *original* attention module: the copy's forward then writes its residual onto the
        original. Tearing the capture hooks down first avoids that; each model re-wires its
        own hooks on its next forward.
        """
        for block in self.model.blocks:
            if hasattr(block, "_teardown_capture_hooks"):
                block._teardown_capture_hooks()
            attn: Any = getattr(block, "attn", None)
            if hasattr(attn, "_captured_pre_ln_residual"):
                attn._captured_pre_ln_residual = None
        return copy.deepcopy(self.model)

    def forward_from(
        self,
        resid: Float[Tensor, "batch pos d_model"],
        layer: int,
        attention_mask: Int[Tensor, "batch pos"],
        positions: Int[Tensor, " batch"],
        fwd_hooks: FwdHooks = (),
    ) -> Float[Tensor, "batch d_model"]:
        """Run blocks ``layer``..L-1 on ``resid``; see `ModelAdapter.forward_from`.

        The bridge's own ``start_at_layer`` still executes the lower blocks, so the blocks are
        called directly, with the keyword arguments the Hugging Face model hands each block
        (causal mask, rotary embeddings, position ids). Those come from a pass that stops
        before block 0, so they depend only on the mask. This assumes every block receives the
        same arguments, as in Llama, Qwen2 and Mistral (not in models with per-layer masks).
        """
        self._check_layer(layer)
        kwargs = self._block_kwargs(attention_mask.to(self.device))
        x = resid.to(self.device)
        with self.hooks(fwd_hooks):
            for block in self.model.blocks[layer:]:
                out = block(x, **kwargs)
                x = out[0] if isinstance(out, tuple) else out
        rows = torch.arange(x.shape[0], device=x.device)
        return x[rows, positions.to(x.device)]

    def _block_kwargs(self, attention_mask: Tensor) -> dict[str, Any]:
        """The keyword arguments the model passes to each block, for this mask."""
        store: dict[str, Any] = {}

        def grab(module: object, args: object, kwargs: dict[str, Any]) -> None:
            store.update(kwargs)
            raise _Stop

        handle = self.model.blocks[0].register_forward_pre_hook(grab, with_kwargs=True)
        dummy = torch.zeros_like(attention_mask, dtype=torch.long)
        try:
            self.model(dummy, attention_mask=attention_mask)
        except _Stop:
            pass
        finally:
            handle.remove()
        if not store:
            raise AssertionError("block 0 was never called")
        store.pop("past_key_values", None)
        store["use_cache"] = False
        return store

    def hf_parameters(self) -> dict[str, torch.nn.Parameter]:
        """Return the resident weights of the wrapped Hugging Face model by their own names.

        Weights that a device map offloaded to ``"cpu"`` or ``"disk"`` are meta placeholders
        between forwards: they cannot train or be compared, and are left out here
        (`hf_tensors` reads them).
        """
        return {
            name.replace("._original_component", ""): param
            for name, param in self.model.original_model.named_parameters()
            if not param.is_meta
        }

    def hf_tensors(self) -> dict[str, Tensor]:
        """Return CPU copies of every weight by Hugging Face name, offloaded ones included."""
        from accelerate.utils import align_module_device

        original = self.model.original_model
        names = {
            name.replace("._original_component", "")
            for name, _ in original.named_parameters()  # tied weights once
        }
        out: dict[str, Tensor] = {}
        for prefix, module in original.named_modules():
            with align_module_device(module):
                for leaf, param in module.named_parameters(recurse=False):
                    name = f"{prefix}.{leaf}".replace("._original_component", "")
                    if name in names and name not in out:
                        out[name] = param.detach().to("cpu", copy=True).contiguous()
        return out

    @property
    def hf_config(self) -> object:
        """The config of the wrapped Hugging Face model, naming its architecture class."""
        original = self.model.original_model
        config = original.config
        if getattr(config, "architectures", None) is None:
            config.architectures = [type(original).__name__]
        return config

    def qk_slices(self, head: Head) -> tuple[ParamSlice, ParamSlice]:
        """Return rows of ``q_proj`` for the head and of ``k_proj`` for its KV group."""
        geo = self.info
        layer, index = geo.check_head(head)
        attn = self.model.blocks[layer].attn
        q_rows = slice(index * geo.d_head, (index + 1) * geo.d_head)
        group = geo.kv_group(index)
        k_rows = slice(group * geo.d_head, (group + 1) * geo.d_head)
        return (
            ParamSlice(f"model.layers.{layer}.self_attn.q_proj.weight", attn.q.weight, q_rows),
            ParamSlice(f"model.layers.{layer}.self_attn.k_proj.weight", attn.k.weight, k_rows),
        )

    def o_slice(self, head: Head) -> ParamSlice:
        """Return the head's columns of ``o_proj`` (``[d_model, n_heads * d_head]``, dim 1)."""
        geo = self.info
        layer, index = geo.check_head(head)
        cols = slice(index * geo.d_head, (index + 1) * geo.d_head)
        weight = self.model.blocks[layer].attn.o.weight
        return ParamSlice(f"model.layers.{layer}.self_attn.o_proj.weight", weight, cols, dim=1)
