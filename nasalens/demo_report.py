"""The sections of the main job's report: what each step measured and decided.

Each function turns one step's results into a `Section` (text, highlighted findings, tables,
figures) for `nasalens.report.write_report`; `nasalens.pipeline.run_demo` calls them in order.
"""

from __future__ import annotations

import pandas as pd

from nasalens.correlation import nas_confidence_correlation
from nasalens.data.sample import Sample
from nasalens.heads import HeadSet
from nasalens.metrics import EvalResult
from nasalens.plotting.heads import heatmap, plot_head_scores
from nasalens.plotting.tuning import plot_comparison, plot_nasa
from nasalens.plotting.validation import plot_head_effects, plot_validation
from nasalens.report import Section
from nasalens.scores import NasScores
from nasalens.tuning import NasaResult, ProbeSet
from nasalens.tuning.evaluation import Comparison
from nasalens.validation import HeadValidation

#: The columns of the report's table of NASA's reasons (long texts, kept apart).
REASON_COLUMNS = ("name", "decision", "reason")


def bias_section(bias: dict[str, EvalResult], examples: pd.DataFrame) -> Section:
    """The untouched model's decisions on each set, and the example prompts."""
    table = pd.concat([r.to_frame(intervals=True) for r in bias.values()], ignore_index=True)
    shown = examples.assign(prompt=[_tail(p.replace("\n", " "), 150) for p in examples["prompt"]])
    findings = tuple(
        f"{name}: answers Yes to {r.summary['share_yes']:.0%} of {r.summary['n']} questions "
        f"(half have the gold answer Yes); recall {r.summary['recall']:.2f}, AUROC "
        f"{r.summary['auroc']:.2f}."
        for name, r in bias.items()
    )
    return Section(
        "The bias",
        text="Prompt I in the model's chat template; the decision is the more probable of the "
        "two candidates at the answer position. Negative bias shows as recall far below "
        "precision; AUROC says whether P(Yes) separates right from wrong answers at all.",
        findings=findings,
        tables=(("Decisions on each set (95% bootstrap intervals)", table), ("Examples", shown)),
    )


def probe_section(probe: ProbeSet) -> Section:
    """What the model knows: the probing set's counts."""
    counts = probe.counts()
    return Section(
        "What the model knows (probing set)",
        text="Prompt II asks each built-in probe question for a short answer; the questions "
        "it answers correctly become positive samples, split into TP (answered Yes), FN "
        "(answered No, tuned on) and V (FN held out). NASA's tau is the smallest model NAS over "
        "TP.",
        findings=(
            f"Known: {counts.get('known', '?')} of {counts.get('questions', '?')} questions; "
            f"TP {counts.get('tp', '?')}, FN train {counts.get('train', '?')}, "
            f"V {counts.get('val', '?')}.",
        ),
        tables=(("Counts", pd.DataFrame([counts])),),
    )


def nas_section(
    model: object, sample: Sample, scores: NasScores, heads: HeadSet, on_probe: EvalResult
) -> Section:
    """NAS of every head, the selected heads, NAS vs P(No), the heatmap of one sample."""
    corr = nas_confidence_correlation(scores, on_probe)
    top = heads[0] if len(heads) else None
    finding = (
        f"{len(heads)} heads pass the selection; the most negative is {top} "
        f"(single-head NAS {heads.nas[0]:.2f}). Model NAS {scores.model:.1f} on "
        f"{len(scores)} positive samples. NAS vs P(No) over the 'No' answers: Pearson "
        f"{corr.pearson:.2f} (p {corr.pearson_p:.2g}), Spearman {corr.spearman:.2f} "
        f"(p {corr.spearman_p:.2g}), n = {corr.n}."
    )
    return Section(
        "Negative heads (NAS)",
        text="NAS of every layer and head on the positive probe samples; heads are selected "
        "by the paper's rule (per-sample top-k, consistency, top n by single-head NAS).",
        findings=(finding,),
        tables=(
            ("Selected heads", heads.to_frame()),
            ("NAS vs negative confidence", corr.to_frame()),
        ),
        figures=(plot_head_scores(scores, heads), heatmap(model, sample)),
    )


def validation_section(validation: HeadValidation) -> Section:
    """Ablating the negative heads against random head sets, and head by head."""
    ld = validation.summary.set_index("metric").loc["logit_diff"]
    rec = validation.summary.set_index("metric").loc["recall"]
    finding = (
        f"Mean-ablating the {len(validation.heads)} heads moves the Yes-No logit difference by "
        f"{ld['effect']:+.3f} [{ld['effect_lo']:+.3f}, {ld['effect_hi']:+.3f}] and recall by "
        f"{rec['effect']:+.3f}; that beats {ld['share_beaten']:.0%} of "
        f"{len(validation.controls)} random head sets of the same layers on the logit "
        "difference."
    )
    figures = [plot_validation(validation)]
    tables = [("Ablation effects vs random head sets", validation.summary)]
    if not validation.per_head.empty:
        figures.append(plot_head_effects(validation))
        tables.append(("Each head ablated alone", validation.per_head))
    return Section(
        "Causal validation",
        text="The selected heads' outputs are replaced by their mean over the evaluation "
        "samples, and the decisions measured again; the same for random head sets with the "
        "same per-layer counts. A head that causes the 'No' should raise the logit "
        "difference and recall more than random heads do.",
        findings=(finding,),
        tables=tuple(tables),
        figures=tuple(figures),
    )


def nasa_section(tuning: NasaResult | None, probe: ProbeSet) -> Section:
    """NASA's run head by head (or why it was skipped), with the reasons apart."""
    text = (
        "Each head's query rows and its KV group's key rows are trained towards 'Yes' on "
        "the FN samples, with early stopping, update cancellation and early halting "
        "(Algorithm 1)."
    )
    if tuning is None:
        counts = probe.counts()
        return Section(
            "NASA: head-wise incremental tuning",
            text=text,
            findings=(
                f"Skipped: the probing set has {counts['train']} false negatives to train on "
                f"and {counts['val']} to validate on; NASA needs at least one of each.",
            ),
        )
    kept = ", ".join(str(h) for h in tuning.kept) or "none"
    finding = (
        f"NASA tuned {len(tuning.head_records)} of {len(tuning.heads)} heads in line and kept "
        f"{kept}; {'halted early' if tuning.halted else 'did not halt early'} (tau "
        f"{tuning.tau:.2f})."
    )
    figures = (plot_nasa(tuning),) if tuning.head_records else ()
    frame = tuning.to_frame()  # the long "reason" texts get a narrow table of their own
    return Section(
        "NASA: head-wise incremental tuning",
        text=text,
        findings=(finding,),
        tables=(
            ("Per head", frame[[c for c in frame.columns if c != "reason"]]),
            ("Why each head stopped", frame[[c for c in REASON_COLUMNS if c in frame.columns]]),
        ),
        figures=figures,
    )


def comparison_section(comparison: Comparison) -> Section:
    """Baseline, NASA and the inference-time baselines on each set, with verdicts."""
    table = comparison.table
    cols = [
        "set", "model", "n", "accuracy", "precision", "recall", "f1", "auroc", "auroc_lo",
        "auroc_hi", "share_yes", "model_nas", "verdict",
    ]  # fmt: skip
    shown = table[[c for c in cols if c in table.columns]]
    findings = tuple(
        f"{r['set']}, {r['model']}: {r['verdict']}"
        for _, r in table.iterrows()
        if r["model"] != comparison.baseline
    )
    tables = [("Baseline, NASA and the inference-time baselines", shown)]
    if not comparison.retention.empty:
        tables.append(
            ("General QA retention (NQ-open, Prompt II exact match)", comparison.retention)
        )
    return Section(
        "Baseline vs tuned",
        text="Success is recall up with discrimination kept: AUROC not lower, accuracy not "
        "lower. A model whose recall rose without AUROC rising is shifted, not debiased.",
        findings=findings,
        tables=tuple(tables),
        figures=(plot_comparison(comparison, "recall"), plot_comparison(comparison, "auroc")),
    )


def _tail(text: str, n: int) -> str:
    """The last ``n`` characters of ``text``, marked with an ellipsis when cut."""
    return text if len(text) <= n else "…" + text[-n:]
