"""Data sets as yes/no samples: loaders for the standard formats and the built-in sets.

Every loader returns `Sample`s balanced between Yes and No; short-answer sets also give their
`Question`s. `load(name, path)` dispatches by name. Importing this package needs no torch.
"""

from nasalens.data.ar_lsat import load_ar_lsat
from nasalens.data.builtin_sets import builtin, builtin_questions
from nasalens.data.gsm8k import gsm8k_questions, load_gsm8k
from nasalens.data.jsonl import load_jsonl, load_questions_jsonl
from nasalens.data.registry import load, load_positives
from nasalens.data.sample import Question, Sample, binary_samples
from nasalens.data.shortqa import hotpotqa_questions, load_hotpotqa, load_nq_open, nq_open_questions
from nasalens.data.strategyqa import load_strategyqa

__all__ = [
    "Question",
    "Sample",
    "binary_samples",
    "builtin",
    "builtin_questions",
    "gsm8k_questions",
    "hotpotqa_questions",
    "load",
    "load_ar_lsat",
    "load_gsm8k",
    "load_hotpotqa",
    "load_jsonl",
    "load_nq_open",
    "load_positives",
    "load_questions_jsonl",
    "load_strategyqa",
    "nq_open_questions",
]
