"""Small-default builders for test inputs."""

from __future__ import annotations

import torch

from nasalens.data.sample import Question, Sample
from nasalens.models import adapt


def make_sample(gold: bool | str = True, **overrides) -> Sample:
    """A binary sample with short defaults; ``gold`` may be "yes"/"no"."""
    if isinstance(gold, str):
        gold = gold.lower() == "yes"
    fields = {
        "id": "s0",
        "question": "What is the capital of France?",
        "gold": gold,
        "label": "Paris" if gold else "Berlin",
    }
    fields.update(overrides)
    return Sample(**fields)


def make_samples(n: int = 4) -> list[Sample]:
    """``n`` samples of different lengths, alternating gold Yes/No."""
    questions = [
        "What is 2 + 2?",
        "Which planet is known as the red planet in our solar system?",
        "Who wrote Hamlet?",
        "What colour is the sky on a clear day, seen from the ground at noon?",
        "How many legs does a spider have?",
        "What is the boiling point of water at sea level in degrees Celsius?",
    ]
    labels = ["4", "Mars", "Shakespeare", "blue", "8", "100"]
    return [
        make_sample(
            gold=i % 2 == 0,
            id=f"s{i}",
            question=questions[i % len(questions)],
            label=labels[i % len(labels)] if i % 2 == 0 else "7",
        )
        for i in range(n)
    ]


def make_question(**overrides) -> Question:
    """A short-answer question with aliases and a wrong answer."""
    fields = {
        "id": "q0",
        "question": "What is 5 + 7?",
        "answers": ("12", "twelve"),
        "wrong": "13",
        "kind": "number",
    }
    fields.update(overrides)
    return Question(**fields)


def weights(model) -> dict[str, torch.Tensor]:
    """A copy of every weight of ``model``, by its Hugging Face name (to compare bit for bit)."""
    return {n: p.detach().clone() for n, p in adapt(model).hf_parameters().items()}
