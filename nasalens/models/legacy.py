"""Legacy TransformerLens 3.9 HookedTransformers: their adapter, and building one from HF weights.

`HookedAdapter` maps the model interface onto a HookedTransformer (its per-head ``W_Q`` and
grouped ``_W_K`` parameters, ``start_at_layer``); `hooked_from_hf` converts a Hugging Face
causal LM without any weight processing. TransformerLens 3.9 is imported lazily: under 4.x,
where HookedTransformer no longer exists, nothing is imported until a legacy model is asked for.
"""

from __future__ import annotations

import importlib.metadata as md
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from nasalens.errors import NasalensError
from nasalens.models.geometry import Head, ModelInfo
from nasalens.models.interface import FwdHooks, ModelAdapter, ParamSlice, Tokenizer

#: The TransformerLens release that still has HookedTransformer, and how to get it.
LEGACY_VERSION = "3.9.0"
INSTALL_HINT = (
    f"pip install transformer-lens=={LEGACY_VERSION} in its own environment (TransformerLens 4 "
    "removed HookedTransformer; `make test-legacy` builds one in .venv-legacy)"
)


@cache
def hooked_transformer_class() -> type[torch.nn.Module] | None:
    """Return TransformerLens's ``HookedTransformer`` class, or None where it is gone (4.x)."""
    try:
        from transformer_lens import HookedTransformer
    except ImportError:
        return None
    return HookedTransformer


def legacy_available() -> bool:
    """Whether the installed TransformerLens has HookedTransformer (3.x)."""
    return hooked_transformer_class() is not None


def require_legacy() -> None:
    """Raise unless HookedTransformer can be imported.

    Raises:
        NasalensError: Under TransformerLens 4, saying what to install.
    """
    if not legacy_available():
        try:
            version = md.version("transformer-lens")
        except md.PackageNotFoundError:
            version = "not installed"
        raise NasalensError(
            f"a HookedTransformer needs TransformerLens {LEGACY_VERSION} (installed: {version}); "
            f"{INSTALL_HINT}; or drop legacy=True to get a TransformerBridge"
        )


@contextmanager
def quiet_deprecation() -> Iterator[None]:
    """Silence TransformerLens 3.9's DeprecationWarning on building a HookedTransformer.

    Building one is the point of this module; the warning (pointing at TransformerLens 4) would
    otherwise surface in every caller, and fail callers that turn warnings into errors.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="HookedTransformer is deprecated")
        yield


class HookedAdapter(ModelAdapter):
    """A TransformerLens 3.9 `HookedTransformer`.

    Its weights are TransformerLens's own parameters, not a Hugging Face model's: per-head
    ``W_Q`` ``[n_heads, d_model, d_head]`` and, with grouped-query attention, ``_W_K``
    ``[n_kv_heads, d_model, d_head]`` (``W_K`` is then an expanded copy, not a parameter).
    `hf_parameters` therefore returns the HookedTransformer's own state-dict names
    (``blocks.3.attn.W_Q``), the names its `ParamSlice`s carry; there is no Hugging Face config,
    so exporting a legacy model as a Hugging Face checkpoint raises.
    """

    @cached_property
    def info(self) -> ModelInfo:
        """The model's head geometry, read from its config."""
        cfg = self.model.cfg
        n_heads = int(cfg.n_heads)
        return ModelInfo(
            name=str(cfg.model_name or "model"),
            architecture=str(cfg.original_architecture or type(self.model).__name__),
            n_layers=int(cfg.n_layers),
            n_heads=n_heads,
            n_kv_heads=int(cfg.n_key_value_heads or n_heads),
            d_model=int(cfg.d_model),
            d_head=int(cfg.d_head),
            d_vocab=int(cfg.d_vocab),
            n_ctx=int(cfg.n_ctx),
        )

    @property
    def tokenizer(self) -> Tokenizer:
        """The model's tokenizer.

        Raises:
            NasalensError: When the model was built without one.
        """
        tok = self.model.tokenizer
        if tok is None:
            raise NasalensError(
                "this HookedTransformer has no tokenizer; build it with tokenizer=... or call "
                "model.set_tokenizer(tokenizer)"
            )
        return tok

    def tokens_hook_name(self) -> str:
        """``hook_tokens``, switched on first if the model was built without it.

        HookedTransformer has that hook point only when ``cfg.use_hook_tokens`` was set at
        construction (`hooked_from_hf` and `tiny_legacy_model` set it); otherwise it is added
        here, once. It passes the ids through unchanged.
        """
        if not self.model.cfg.use_hook_tokens:
            from transformer_lens.hook_points import HookPoint

            self.model.hook_tokens = HookPoint()
            self.model.cfg.use_hook_tokens = True
            self.model.setup()
        return "hook_tokens"

    def qk_slices(self, head: Head) -> tuple[ParamSlice, ParamSlice]:
        """Return ``W_Q[head]`` and the key weights of the KV group it reads.

        With grouped-query attention the key slice is ``_W_K[group]`` (shared by the group's
        query heads); without, it is ``W_K[head]``.
        """
        geo = self.info
        layer, index = geo.check_head(head)
        attn = self.model.blocks[layer].attn
        grouped = self.model.cfg.n_key_value_heads is not None
        k_name, k_index = ("_W_K", geo.kv_group(index)) if grouped else ("W_K", index)
        return (
            ParamSlice(f"blocks.{layer}.attn.W_Q", attn.W_Q, slice(index, index + 1)),
            ParamSlice(
                f"blocks.{layer}.attn.{k_name}", getattr(attn, k_name), slice(k_index, k_index + 1)
            ),
        )

    def o_slice(self, head: Head) -> ParamSlice:
        """Return ``W_O[head]`` (``[n_heads, d_head, d_model]``)."""
        layer, index = self.info.check_head(head)
        attn = self.model.blocks[layer].attn
        return ParamSlice(f"blocks.{layer}.attn.W_O", attn.W_O, slice(index, index + 1))

    def hf_parameters(self) -> dict[str, torch.nn.Parameter]:
        """Return the parameters by the HookedTransformer's own names (there is no HF model).

        Names look like ``blocks.3.attn.W_Q`` and ``blocks.3.attn._W_K``; tuning checkpoints of
        a legacy model are keyed by them and load back into a legacy model only.
        """
        return dict(self.model.named_parameters())

    @property
    def hf_config(self) -> object:
        """Raise: a HookedTransformer holds no Hugging Face model or config.

        Raises:
            NasalensError: Always, saying how to export instead.
        """
        raise NasalensError(
            "a HookedTransformer (TransformerLens 3.9) has no Hugging Face config, so it cannot "
            "be exported as a Hugging Face checkpoint; run the same steps on a TransformerBridge "
            "(nasalens.load_model() under TransformerLens 4) to export"
        )

    def forward_from(
        self,
        resid: Float[Tensor, "batch pos d_model"],
        layer: int,
        attention_mask: Int[Tensor, "batch pos"],
        positions: Int[Tensor, " batch"],
        fwd_hooks: FwdHooks = (),
    ) -> Float[Tensor, "batch d_model"]:
        """Run blocks ``layer``..L-1 on ``resid``; see `ModelAdapter.forward_from`.

        HookedTransformer's ``start_at_layer`` runs only the blocks from ``layer`` on (no
        embedding, no lower block); with ``stop_at_layer=n_layers`` it returns the residual
        before the final norm. Rotary positions come from the attention mask, as in the full
        pass.
        """
        self._check_layer(layer)
        device = self.device
        with self.hooks(fwd_hooks):
            x = self.model(
                resid.to(device),
                start_at_layer=layer,
                stop_at_layer=self.info.n_layers,
                attention_mask=attention_mask.to(device),
            )
        rows = torch.arange(x.shape[0], device=x.device)
        return x[rows, positions.to(x.device)]


def hooked_from_hf(
    hf: torch.nn.Module,
    tokenizer: Any,
    label: str,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.nn.Module:
    """Convert a Hugging Face causal LM into a HookedTransformer, with no weight processing.

    ``HookedTransformer.from_pretrained`` accepts only the models on TransformerLens's list (not
    SmolLM2) and refuses GGUF-quantized checkpoints, so the config is derived from the model's
    own config (written to a temporary folder) and the weights are converted with
    TransformerLens's converter for the architecture. Nothing is folded or centered: LayerNorm
    weights stay where they are, so tuning trains the same parameterization as on a bridge.
    ``hf`` is not changed.

    Args:
        hf: The Hugging Face model (its weights are copied).
        tokenizer: Its tokenizer, kept as given (never reloaded by name).
        label: The model's name in the config.
        device: Where the weights go.
        dtype: Weight dtype.

    Returns:
        The HookedTransformer in eval mode, with the tokenizer set and ``hook_tokens`` on.

    Raises:
        NasalensError: Under TransformerLens 4, when TransformerLens 3.9 cannot convert the
            architecture, or when the temporary folder's path contains "llama".
    """
    require_legacy()
    from transformer_lens import HookedTransformer
    from transformer_lens import loading_from_pretrained as loading

    from nasalens.models.tokenizers import tokenizer_kept

    config: Any = hf.config
    arch = (getattr(config, "architectures", None) or [type(hf).__name__])[0]
    # A temporary copy of the config: TransformerLens derives its own from a folder. The folder
    # name must not contain "llama" (TransformerLens then guesses from the name instead).
    folder = Path(tempfile.mkdtemp(prefix="nasalens-legacy-"))
    if "llama" in str(folder).lower():
        shutil.rmtree(folder, ignore_errors=True)
        raise NasalensError(
            f"the temporary folder {folder} contains 'llama', which TransformerLens 3.9 reads as "
            "a model name; set TMPDIR to a folder whose path does not"
        )
    try:
        saved = config.to_dict()
        saved.pop("quantization_config", None)  # GGUF weights are de-quantized already
        saved["architectures"] = [arch]
        type(config).from_dict(saved).save_pretrained(str(folder))
        try:
            cfg = loading.get_pretrained_model_config(
                str(folder), fold_ln=False, device=str(device), dtype=dtype
            )
            state = loading.get_pretrained_state_dict(str(folder), cfg, hf_model=hf, dtype=dtype)
        except (NotImplementedError, KeyError, ValueError) as err:
            raise NasalensError(
                f"TransformerLens {md.version('transformer-lens')} cannot convert architecture "
                f"{arch!r} of {label!r} to a HookedTransformer ({err}); use a TransformerBridge"
            ) from err
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    cfg.model_name = label
    cfg.use_hook_tokens = True
    cfg.init_weights = False  # overwritten below
    with tokenizer_kept(tokenizer, label), quiet_deprecation():
        model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=True)
    # The state dict is copied into the model's own parameters: ``hf`` stays independent.
    model.load_and_process_state_dict(
        state,
        fold_ln=False,
        center_writing_weights=False,
        center_unembed=False,
        fold_value_biases=False,
        refactor_factored_attn_matrices=False,
    )
    return model.eval()
