"""A HookedTransformer and a TransformerBridge holding the same weights give the same numbers.

Both load one Hugging Face folder (the tiny model saved here, or the embedded model): the
HookedTransformer in this process (TransformerLens 3.9), the bridge in a subprocess of the
TransformerLens 4 environment ($NASALENS_TL4_PYTHON, default .venv/bin/python), which writes its
`figures` to a file. NAS, the Yes-No logit difference (clean and after ablation) and one NASA
training step must agree to 1e-4.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from nasalens.models import legacy_available, load_model, tiny_hf_model
from tests.legacy.figures import LR, figures

pytestmark = [
    pytest.mark.legacy,
    pytest.mark.skipif(
        not legacy_available(),
        reason="needs TransformerLens 3.9 (HookedTransformer); runs in make test-legacy",
    ),
]

REPO = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-4
#: Gradient entries below this (10x AdamW's eps) make the first step's size float noise.
FLAT = 1e-7


def bridge_figures(source: str, out: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Run `figures` on a bridge in the TransformerLens 4 environment; return them and who ran."""
    given = os.environ.get("NASALENS_TL4_PYTHON")
    python = Path(given) if given else REPO / ".venv" / "bin" / "python"
    if not python.is_file():
        if given:
            pytest.fail(f"NASALENS_TL4_PYTHON={given} does not exist")
        pytest.skip(f"the bridge's side needs the TransformerLens 4 environment at {python}")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [str(python), "-m", "tests.legacy.figures", source, str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    with safe_open(str(out), framework="pt") as handle:
        return {k: handle.get_tensor(k) for k in handle.keys()}, dict(handle.metadata())


def differences(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> dict[str, float]:
    """Max abs difference of every figure."""
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert ours[name].shape == theirs[name].shape, name
    return {name: float((ours[name] - theirs[name]).abs().max()) for name in sorted(ours)}


def check(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor], who: dict[str, str]):
    """Every figure within `TOLERANCE`; the trained slices where the step is well defined.

    AdamW's first step moves an entry by ``lr * g / (|g| + eps)`` (eps 1e-8): where the
    gradient is within a few eps of 0, float noise in ``g`` (about 1e-6 of its scale between two
    implementations) becomes up to ``2 * lr``. Those entries (gradient below `FLAT` on either
    side; a handful of the 36,864 per slice on the embedded model) are left out of the trained
    slices' comparison and counted; the gradients themselves are compared everywhere.
    """
    assert who["model"] == "TransformerBridge" and who["transformer_lens"].startswith("4.")
    diffs = differences(ours, theirs)
    print("max abs difference, HookedTransformer vs TransformerBridge:")
    for name, value in diffs.items():
        print(f"  {name:18s} {value:.3e}")
    for name in ("q", "k"):
        flat = torch.minimum(ours[f"grad_{name}"].abs(), theirs[f"grad_{name}"].abs()) < FLAT
        moved = (ours[f"tuned_{name}"] - theirs[f"tuned_{name}"]).abs()[~flat]
        diffs[f"tuned_{name}"] = float(moved.max())
        kept = diffs[f"tuned_{name}"]
        print(f"  tuned_{name}, |grad| >= {FLAT:g}: {kept:.3e} ({int(flat.sum())} flat)")
        assert flat.float().mean() < 1e-3, f"{int(flat.sum())} flat entries in {name}"
        # The step really moved the slice (about LR per entry): agreement is not trivial.
        step = (ours[f"tuned_{name}"] - ours[f"start_{name}"]).abs()
        assert step.median() > LR / 2, name
    assert all(value <= TOLERANCE for value in diffs.values()), diffs


def test_tiny_bridge_and_hooked_transformer_agree(tmp_path):
    hf, tok = tiny_hf_model(seed=0)
    folder = tmp_path / "tiny"
    hf.save_pretrained(folder)
    tok.save_pretrained(folder)
    theirs, who = bridge_figures(str(folder), tmp_path / "bridge.safetensors")
    ours = figures(load_model(folder, legacy=True))
    check(ours, theirs, who)


@pytest.mark.embedded
@pytest.mark.slow
def test_embedded_bridge_and_hooked_transformer_agree(tmp_path):
    theirs, who = bridge_figures("embedded", tmp_path / "bridge.safetensors")
    ours = figures(load_model(legacy=True))
    check(ours, theirs, who)
