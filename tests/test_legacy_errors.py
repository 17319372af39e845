"""What a TransformerLens 4 user gets on asking for a legacy HookedTransformer (skips under 3.9)."""

from __future__ import annotations

import pytest
import torch

from nasalens.errors import NasalensError
from nasalens.models import adapt, legacy_available, load_model, tiny_legacy_model

pytestmark = pytest.mark.skipif(
    legacy_available(), reason="checks the TransformerLens 4 errors; runs in make test"
)


@pytest.mark.parametrize("build", [lambda: load_model(legacy=True), tiny_legacy_model])
def test_a_legacy_model_says_what_to_install(build):
    with pytest.raises(NasalensError, match=r"transformer-lens==3\.9\.0.*legacy=True"):
        build()


def test_adapt_names_both_model_types():
    with pytest.raises(NasalensError, match=r"TransformerBridge.*HookedTransformer"):
        adapt(torch.nn.Linear(2, 2))
