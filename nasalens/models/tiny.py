"""A tiny random Llama (grouped-query attention) as a TransformerBridge, built in ~0.1 s offline.

For tests, docs and quick experiments: same code paths as a real model, no download. Its
tokenizer is a small byte-level BPE with a ChatML chat template. `tiny_legacy_model` builds the
same shape as a TransformerLens 3.9 HookedTransformer.
"""

from __future__ import annotations

from typing import Any

import torch

from nasalens.models.legacy import quiet_deprecation, require_legacy
from nasalens.models.loading import boot, check_live_hooks, tokenizer_kept

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_CORPUS = [
    "You are given a question and you MUST answer Yes or No. Question: What is the capital of "
    "France? Is the answer Paris? Answer: Yes",
    "You MUST answer shortly the given question based on your knowledge. Question: Who wrote "
    "Hamlet? Answer: William Shakespeare",
    "True or False, Correct or Wrong, yes or no. The answer is No.",
    "user assistant system The sky is blue and grass is green. 12 plus 7 is 19.",
]


def tiny_tokenizer(vocab_size: int = 400) -> object:
    """Return a byte-level BPE tokenizer with a ChatML template (BOS ``<|im_start|>``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(_CORPUS * 4, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def tiny_model(
    *,
    seed: int = 0,
    n_layers: int = 2,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    d_model: int = 64,
    d_mlp: int = 128,
    n_ctx: int = 512,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> torch.nn.Module:
    """Build a random Llama TransformerBridge with grouped-query attention, offline.

    Args:
        seed: Seed of the random weights.
        n_layers: Transformer blocks.
        n_heads: Query heads per layer.
        n_kv_heads: Key/value heads per layer (must divide n_heads).
        d_model: Residual width; d_head is d_model // n_heads.
        d_mlp: MLP width.
        n_ctx: Maximum context length.
        dtype: Weight dtype (the weights are drawn in float32, then rounded).
        device: Where the weights go.

    Returns:
        The bridge in eval mode, with its tokenizer.
    """
    hf, tok = tiny_hf_model(
        seed=seed,
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        d_model=d_model,
        d_mlp=d_mlp,
        n_ctx=n_ctx,
    )
    hf.to(device=device, dtype=dtype)
    model = boot(hf, tok, f"nasalens-tiny-{seed}", device=device)
    check_live_hooks(model)
    return model


def tiny_hf_model(
    *,
    seed: int = 0,
    n_layers: int = 2,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    d_model: int = 64,
    d_mlp: int = 128,
    n_ctx: int = 512,
) -> tuple[torch.nn.Module, object]:
    """Build the random Hugging Face Llama and tokenizer behind `tiny_model` (not booted).

    Save both with ``save_pretrained`` to load the same weights as a bridge and, under
    TransformerLens 3.9, as a HookedTransformer (``load_model(folder, legacy=True)``).

    Returns:
        The ``LlamaForCausalLM`` in eval mode and its tokenizer.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tiny_tokenizer()
    cfg = LlamaConfig(
        vocab_size=len(tok),  # type: ignore[arg-type]
        hidden_size=d_model,
        intermediate_size=d_mlp,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv_heads,
        max_position_embeddings=n_ctx,
        bos_token_id=tok.bos_token_id,  # type: ignore[attr-defined]
        eos_token_id=tok.eos_token_id,  # type: ignore[attr-defined]
        pad_token_id=tok.pad_token_id,  # type: ignore[attr-defined]
        tie_word_embeddings=False,
    )
    cfg.architectures = ["LlamaForCausalLM"]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        hf = LlamaForCausalLM(cfg).eval()
    return hf, tok


def tiny_legacy_model(
    *,
    seed: int = 0,
    n_layers: int = 2,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    d_model: int = 64,
    d_mlp: int = 128,
    n_ctx: int = 512,
) -> torch.nn.Module:
    """Build a random Llama-shaped HookedTransformer (TransformerLens 3.9) from its config, offline.

    Same arguments and tokenizer as `tiny_model`; the weights are HookedTransformer's own random
    initialization (so not equal to `tiny_model`'s for the same seed).

    Returns:
        The HookedTransformer in eval mode, with its tokenizer and ``hook_tokens`` on.

    Raises:
        NasalensError: Under TransformerLens 4, which has no HookedTransformer.
    """
    require_legacy()
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    tok: Any = tiny_tokenizer()
    d_head = d_model // n_heads
    label = f"nasalens-tiny-legacy-{seed}"
    cfg = HookedTransformerConfig(
        model_name=label,
        original_architecture="LlamaForCausalLM",
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        d_head=d_head,
        n_key_value_heads=n_kv_heads if n_kv_heads != n_heads else None,
        d_mlp=d_mlp,
        d_vocab=len(tok),
        n_ctx=n_ctx,
        act_fn="silu",
        normalization_type="RMS",
        final_rms=True,
        gated_mlp=True,
        positional_embedding_type="rotary",
        rotary_dim=d_head,
        rotary_adjacent_pairs=False,
        eps=1e-6,
        use_hook_tokens=True,
        dtype=torch.float32,
        device="cpu",
    )
    with torch.random.fork_rng(), tokenizer_kept(tok, label), quiet_deprecation():
        torch.manual_seed(seed)
        model = HookedTransformer(cfg, tokenizer=tok).eval()
    check_live_hooks(model)
    return model
