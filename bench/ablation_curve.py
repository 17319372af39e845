"""How far from linear a head's ablation is: the Yes-No difference along the path to its mean.

For each head, z is moved a share alpha of the way to its mean (alpha = 0: untouched, 1: mean
ablation) at every position, and the mean Yes-No log-probability difference over the batch is
measured. Attribution is the slope at alpha = 0 times 1; the exact effect is the value at
alpha = 1. A curve that is flat at 0 and rises later (saturation) or rises and falls back
(cancelling paths) is where the linear estimate fails (docs/ranking.md).

    python bench/ablation_curve.py --heads L1H5,L13H3,L12H8,L19H5   # the organism's FN prompts
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--heads", default="L1H5,L13H3,L12H8,L19H5,L12H2,L24H1")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/ablation_curve.json")
    args = parser.parse_args(argv)

    import nasalens as nl
    from nasalens import organisms
    from nasalens.artifacts import write_json
    from nasalens.metrics import answer_logprobs
    from nasalens.patching import head_means

    model = nl.load_model(str(organisms.organism_dir(stage="planted")))
    probe = nl.probe_set(model, organisms.nasa_questions(), progress=False)
    batch = nl.encode(model, list(probe.train))
    means = head_means(model, batch)
    ranking = nl.rank_heads(model, batch, method="attribution", progress=False)
    estimate = dict(zip(ranking, ranking.score("estimate"), strict=True))

    def ld(hooks=()) -> float:
        lp = answer_logprobs(model, batch, progress=False, fwd_hooks=hooks)
        return float((lp[:, 0] - lp[:, 1]).mean())

    base = ld()
    alphas = [i / args.steps for i in range(args.steps + 1)]
    out = {"baseline": base, "alphas": alphas, "heads": {}}
    for name in args.heads.split(","):
        head = nl.Head.parse(name)

        def hook(z, hook, alpha=0.0, h=head):
            z = z.clone()
            mean = means[h.layer, h.head].to(z.dtype)
            z[:, :, h.head] = z[:, :, h.head] + alpha * (mean - z[:, :, h.head])
            return z

        curve = []
        for alpha in alphas:
            moved = functools.partial(hook, alpha=alpha)
            curve.append(ld([(f"blocks.{head.layer}.attn.hook_z", moved)]) - base)
        out["heads"][name] = {"estimate": estimate[head], "curve": curve}
        shape = " ".join(f"{v:+.3f}" for v in curve)
        print(f"{name}: attribution {estimate[head]:+.3f}; effect along alpha: {shape}", flush=True)
    write_json(args.out, out)
    return out


if __name__ == "__main__":
    main()
