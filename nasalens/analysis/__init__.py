"""Analyses beyond NAS: prompt generalization, knowledge categories, prompting scenarios.

The paper's appendices G-J and its sequel (Song, Yu, Yoon 2025), as functions of any model,
base or tuned. `analyze()` runs them all on one sample set.
"""

from nasalens.analysis.generalization import generalization, pick_shots
from nasalens.analysis.knowledge import (
    CATEGORIES,
    NON_ANSWERS,
    Knowledge,
    classify_answer,
    classify_knowledge,
    fn_composition,
    gold_answers,
    shift_ratios,
)
from nasalens.analysis.outcomes import outcomes
from nasalens.analysis.scenarios import (
    IDK_PHRASE,
    SCENARIOS,
    Scenarios,
    chain_of_thought,
    parse_final_answer,
    run_scenarios,
    three_way_logprobs,
)
from nasalens.analysis.suite import Analysis, analyze

__all__ = [
    "CATEGORIES",
    "IDK_PHRASE",
    "NON_ANSWERS",
    "SCENARIOS",
    "Analysis",
    "Knowledge",
    "Scenarios",
    "analyze",
    "chain_of_thought",
    "classify_answer",
    "classify_knowledge",
    "fn_composition",
    "generalization",
    "gold_answers",
    "outcomes",
    "parse_final_answer",
    "pick_shots",
    "run_scenarios",
    "shift_ratios",
    "three_way_logprobs",
]
