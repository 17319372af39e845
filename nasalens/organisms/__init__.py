"""Model organisms: the embedded model taught to decide, then biased in known heads.

The planted-bias organism is ground truth for the toolkit. Step (a) fine-tunes the whole model
on balanced yes/no checks of the built-in probe facts it knows, so that its Yes/No decision
carries signal. Step (b) trains only a few chosen heads towards "No" on every check, planting a
negative bias whose heads are known: a `Plant` says which heads and through which of their
weights (query rows, query and key rows, or output columns), so a suite of plants can start
from one taught model (`plant`). The taught facts are split (seeded)
into NASA's share (its probing set) and the *checks*, facts the organism discriminates but
NASA never sees: the set on which a repair must restore recall and keep AUROC. Both stages are
built deterministically (`teaching`) and cached as Hugging Face folders (safetensors) under
``nasalens.models.cache_dir() / "organisms"``, plants as small deltas (`cache`); the same
recipe runs on the tiny test model.
"""

from nasalens.organisms.cache import (
    Stage,
    build_report,
    check_questions,
    checks,
    is_built,
    load,
    load_plant,
    nasa_questions,
    organism,
    organism_dir,
    plant_file,
    save,
    taught_questions,
)
from nasalens.organisms.teaching import (
    Organism,
    OrganismRecipe,
    build,
    measure,
    questions_by_id,
    split,
    teach_questions,
)

__all__ = [
    "Organism",
    "OrganismRecipe",
    "Stage",
    "build",
    "build_report",
    "check_questions",
    "checks",
    "is_built",
    "load",
    "load_plant",
    "measure",
    "nasa_questions",
    "organism",
    "organism_dir",
    "plant_file",
    "questions_by_id",
    "save",
    "split",
    "taught_questions",
    "teach_questions",
]
