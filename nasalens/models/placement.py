"""Where a model's weights go and in which dtype: the options of `load_model`, checked.

`placement` turns ``device``, ``device_map``, ``n_devices``, ``max_memory`` and
``offload_folder`` into the keyword arguments of Hugging Face's ``from_pretrained`` (whose
accelerate dispatch TransformerLens 4.3's bridge runs on), or raises when they contradict each
other or name devices this machine does not have.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from nasalens.errors import NasalensError

#: Weight dtypes nasalens runs in; every score, log-probability and loss is computed in float32.
DTYPES = (torch.float32, torch.bfloat16, torch.float16)

DeviceMap = str | dict[str, str | int]


@dataclass(frozen=True)
class Placement:
    """Where a model's weights go: one device, or a device map for accelerate's dispatch.

    Attributes:
        device: The single device (None when the layers are split).
        kwargs: What ``from_pretrained`` gets: ``device_map`` (also ``{"": device}`` for one
            accelerator, so that the weights load there directly), ``max_memory``,
            ``offload_folder``; empty for the CPU.
    """

    device: torch.device | None
    kwargs: dict[str, object]

    @property
    def split(self) -> bool:
        """Whether the layers may end up on more than one device (or offloaded)."""
        return self.device is None


def placement(
    device: str | torch.device | None = None,
    device_map: DeviceMap | None = None,
    n_devices: int | None = None,
    max_memory: dict[str | int, str | int] | None = None,
    offload_folder: str | Path | None = None,
) -> Placement:
    """Check the placement options of `load_model` and turn them into ``from_pretrained`` ones.

    Raises:
        NasalensError: When the options contradict each other or name devices that are absent.
    """
    if n_devices is not None and n_devices < 1:
        raise NasalensError(f"n_devices must be at least 1, got {n_devices}")
    split = device_map is not None or (n_devices or 1) > 1
    if device is not None and split:
        raise NasalensError(
            f"device={str(device)!r} puts the whole model on one device, device_map/n_devices "
            "split its layers; pass one of them"
        )
    if device_map is not None and n_devices is not None:
        raise NasalensError(
            "device_map and n_devices both say where the layers go; pass one (n_devices=N is "
            "device_map='balanced' over GPUs 0..N-1)"
        )
    if max_memory is not None and not split:
        raise NasalensError(
            "max_memory only applies when the layers are split; pass device_map='auto' (or "
            "n_devices=) with it, or drop it"
        )
    if offload_folder is not None and device_map is None:
        raise NasalensError(
            "offload_folder only applies to a device_map with 'disk' entries; pass the "
            "device_map too, or drop offload_folder"
        )
    if not split:
        one = torch.device(device if device is not None else "cpu")
        _check_device(one)
        if one.type == "cuda" and one.index is None:  # "cuda": the current GPU, by number
            one = torch.device("cuda", torch.cuda.current_device())
        kwargs: dict[str, object] = {} if one.type == "cpu" else {"device_map": {"": str(one)}}
        return Placement(one, kwargs)
    if isinstance(device_map, dict):
        for module, where in device_map.items():
            text = str(where).lower()
            if text == "meta":
                raise NasalensError(
                    f"device_map sends {module!r} to 'meta', which holds no weights; use a GPU "
                    "index, 'cpu' or 'disk'"
                )
            if text not in ("cpu", "disk"):
                _check_device(torch.device(f"cuda:{where}" if isinstance(where, int) else text))
    from transformer_lens.utilities.multi_gpu import resolve_device_map

    try:
        resolved, memory = resolve_device_map(n_devices, device_map, None, max_memory)
    except ValueError as err:
        raise NasalensError(
            f"cannot split the model this way: {err}; on a machine without GPUs use a "
            "device_map of 'cpu' and 'disk' entries, or device='cpu'"
        ) from err
    kwargs = {"device_map": resolved}
    if memory is not None:
        kwargs["max_memory"] = memory
    if offload_folder is not None:
        kwargs["offload_folder"] = str(offload_folder)
    return Placement(None, kwargs)


def _check_device(device: torch.device) -> None:
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise NasalensError(
                f"device {str(device)!r}: CUDA is not available on this machine (torch "
                f"{torch.__version__}); use device='cpu'"
            )
        if device.index is not None and device.index >= count:
            raise NasalensError(
                f"device {str(device)!r}: only {count} CUDA device(s) are visible (0..{count - 1})"
            )


def check_dtype(dtype: torch.dtype) -> None:
    """Check that nasalens can run a model in ``dtype`` (`DTYPES`).

    Raises:
        NasalensError: For any other dtype, naming the supported ones.
    """
    if dtype not in DTYPES:
        raise NasalensError(
            f"dtype {dtype} is not supported; use torch.float32, torch.bfloat16 or "
            "torch.float16 (quantized weights: load them de-quantized)"
        )
