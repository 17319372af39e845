"""NASA: head-wise incremental tuning of negative heads (Yu et al. 2025, Algorithm 1).

For each head, most negative first, only its query rows (and, in mode "qk", the key rows of the
KV group it reads; with grouped-query attention that slice is shared by the whole group) train
on the FN part of the probing set, with the cross-entropy of the answer token "Yes" as loss.
After each epoch, early stopping ends the head when its NAS on V rose, fell below rho, or model
NAS on V rose. After the head, update cancellation reverts it when its NAS or model NAS ended
above where they started. Early halting ends the run once model NAS on V is below tau.
After every head, every parameter outside the trained rows is checked to be bit-identical.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from contextlib import closing

import torch
from torch import Tensor
from tqdm.auto import tqdm

from nasalens.data.sample import Question
from nasalens.errors import NasalensError
from nasalens.heads import HeadSet, random_like
from nasalens.models import Head, HeadLike, adapt
from nasalens.models.interface import ModelAdapter, ParamSlice
from nasalens.prompts import Batch, binary, encode
from nasalens.scores import nas
from nasalens.tuning import train
from nasalens.tuning.config import NasaConfig
from nasalens.tuning.probe import ProbeSet, probe_set
from nasalens.tuning.result import NasaResult, trained_slices
from nasalens.tuning.selection import select_heads
from nasalens.tuning.vstats import ValView, VStats, nas_scale

logger = logging.getLogger(__name__)


#: Called with each JSON-ready log record (one per epoch, one per head).
OnRecord = Callable[[dict], None]
#: Called after each head with its index and every tensor that differs from the base model.
OnHead = Callable[[int, dict[str, Tensor], bool], None]


def nasa(
    model: object,
    probe: ProbeSet | Sequence[Question],
    heads: Sequence[HeadLike] | None = None,
    config: NasaConfig | None = None,
    *,
    progress: bool = True,
) -> NasaResult:
    """Tune the negative heads of a copy of ``model`` by Algorithm 1 of the paper.

    Every setting of ``config`` applies: questions become a probing set with its
    ``val_fraction`` and ``seed``; without ``heads`` the heads are ranked by its ``select``
    (with ``k`` and ``consistency``, `select_heads`); the first ``top_n`` of the ranking are
    tuned, in order.

    Args:
        model: A model from `nasalens.load_model`; it is not changed.
        probe: The probing set (`probe_set`: FN to train on, V to watch, TP for tau), or
            short-answer questions to build it from.
        heads: A ranking of heads, first tuned first (e.g. `negative_heads`, `rank_heads`,
            names like "L17H7"); default: chosen by ``config.select``.
        config: Settings; default: the paper's (`NasaConfig`).
        progress: Show progress bars per head and epoch.

    Returns:
        The tuned copy and the log of every epoch and head.

    Raises:
        NasalensError: When the probing set has no FN to train on or no V, or no heads are given.
        AssertionError: When a parameter outside the trained rows changed (a bug, never ignored).

    Example:
        >>> config = nasalens.NasaConfig(lr=1e-3, top_n=10, select="causal")  # doctest: +SKIP
        >>> result = nasalens.nasa(model, questions, config=config)           # doctest: +SKIP
        >>> result.kept                                                       # doctest: +SKIP
    """
    config = config or NasaConfig()
    if not isinstance(probe, ProbeSet):
        probe = probe_set(
            model, probe, val_fraction=config.val_fraction, seed=config.seed, progress=progress
        )
    if heads is None:
        heads = select_heads(model, probe, config, progress=progress)
    base = adapt(model)
    line_up = heads_to_train(base, heads, config)
    tau = threshold(base, probe, line_up, config)
    tuned = adapt(base.clone())
    records: list[dict] = []
    tune(tuned, base, probe, line_up, config, tau, on_record=records.append, progress=progress)
    return NasaResult(tuned.model, line_up, tuple(records), tau, config)


def heads_to_train(adapter: ModelAdapter, heads: Sequence[HeadLike], config: NasaConfig) -> HeadSet:
    """The heads in line: the first ``config.top_n`` of ``heads``, or matched random heads.

    In mode "random" the line-up is random heads with the same per-layer counts as those
    first ``top_n``.

    Raises:
        NasalensError: When no heads are given or a head does not exist.
    """
    if not heads:
        raise NasalensError("nasa: no heads given; pass negative_heads(scores) or a HeadSet")
    ranked = HeadSet.of(heads)
    adapter.info.check_heads(ranked)
    line_up = ranked.top(config.top_n)
    if config.mode == "random":
        return random_like(line_up, adapter.info, seed=config.seed)[0]
    return line_up


def threshold(
    adapter: ModelAdapter, probe: ProbeSet, heads: Sequence[Head], cfg: NasaConfig
) -> float:
    """Return tau in the config's terms: the smallest model NAS (all or selected heads) over TP.

    -inf when TP is empty (see `nasalens.tuning.probe.EMPTY_TP_RULE`).
    """
    if not probe.tp:
        return -math.inf
    batch = encode(adapter.model, probe.tp, template=binary())
    scores = nas(
        adapter.model, batch, eps=cfg.eps, region=cfg.region, chunk_size=cfg.chunk_size,
        progress=False,
    )  # fmt: skip
    per = scores.model_per_sample if cfg.model_nas == "all" else scores.of_heads(list(heads))
    return float(per.min()) * nas_scale(cfg.log_base)


def tune(
    tuned: ModelAdapter,
    base: ModelAdapter,
    probe: ProbeSet,
    heads: HeadSet,
    config: NasaConfig,
    tau: float,
    *,
    start: int = 0,
    on_record: OnRecord | None = None,
    on_head: OnHead | None = None,
    progress: bool = True,
) -> None:
    """Run Algorithm 1 on ``tuned`` in place, from head number ``start``.

    ``base`` is the untouched model: after each head every parameter of ``tuned`` must equal
    it except rows that a head was allowed to change. ``on_head`` receives the changed
    tensors after each head (for checkpoints) and whether the run halted there.
    """
    if not probe.train or not probe.val:
        raise NasalensError(
            f"nasa: the probing set has {len(probe.train)} training and {len(probe.val)} "
            "validation samples (FN); it needs both: use more questions the model knows and "
            "answers 'No' to, or a larger val_fraction"
        )
    train_batch = encode(tuned.model, probe.train, template=binary())
    val_batch = encode(tuned.model, probe.val, template=binary())
    guard = _Guard(tuned, base)
    emit = on_record or (lambda record: None)
    bar = tqdm(list(heads)[start:], desc="NASA heads", disable=not progress)
    for index, head in enumerate(bar, start=start):
        bar.set_postfix_str(str(head))
        started = time.perf_counter()
        slices = trained_slices(tuned, head, config)
        guard.begin(slices)
        outcome = _tune_head(
            tuned, head, index, slices, train_batch, val_batch, heads, config, emit, progress
        )
        halted = _halts(outcome["end"], tau, config)
        record = {
            "event": "head",
            "head_index": index,
            "head": str(head),
            "decision": outcome["decision"],
            "reason": outcome["reason"],
            "epochs": outcome["epochs"],
            "halted": halted,
            **outcome["start"].to_dict("start_"),
            **outcome["end"].to_dict("end_"),
            "tau": tau,
            "seconds": round(time.perf_counter() - started, 3),
        }
        guard.end(head)
        emit(record)
        if on_head is not None:
            on_head(index, guard.changed(), halted)
        if halted:
            logger.info("early halting after %s: %s", head, record)
            break


def _tune_head(
    adapter: ModelAdapter,
    head: Head,
    index: int,
    slices: list[ParamSlice],
    train_batch: Batch,
    val_batch: Batch,
    heads: HeadSet,
    config: NasaConfig,
    emit: OnRecord,
    progress: bool,
) -> dict:
    """Train one head with early stopping and update cancellation; return what happened."""
    layer = head.layer
    selected = None if config.model_nas == "all" else list(heads)
    view = ValView(
        adapter, val_batch, layer, chunk_size=config.chunk_size, eps=config.eps,
        region=config.region, scale=nas_scale(config.log_base), selected=selected,
    )  # fmt: skip
    first = prev = view.measure(head)
    resid = train.residuals(adapter, train_batch, layer, config.chunk_size)
    targets = torch.full((len(train_batch),), int(_yes(train_batch)))
    at_start = _snapshot(slices)
    reason, epochs = "", 0

    def loss(rows: Tensor) -> Tensor:
        sub = train_batch.select(rows)
        r = resid[rows][:, : sub.tokens.shape[1]]
        return train.answer_loss(adapter, r, layer, sub, targets[rows])

    run = train.epochs(
        adapter, slices, loss, n_rows=len(train_batch), lr=config.lr,
        n_epochs=config.max_epochs, batch_size=config.batch_size,
        order=lambda epoch: torch.Generator().manual_seed(_seed(config.seed, index, epoch)),
        warmup=config.warmup, schedule_kind=config.schedule, desc=str(head), progress=progress,
    )  # fmt: skip
    before = None if config.keep_tripping_epoch else _snapshot(slices)
    with closing(run):
        for done in run:
            now = view.measure(head)
            epochs = done.epoch
            reasons = _stopping(prev, now, config) if config.early_stopping else []
            emit({
                "event": "epoch", "head_index": index, "head": str(head), "epoch": done.epoch,
                "loss": done.loss, "lr": done.lr, **now.to_dict(),
                "decision": "stopped" if reasons else "continue", "reason": "; ".join(reasons),
            })  # fmt: skip
            if reasons:
                reason = "; ".join(reasons)
                if before is not None:
                    _restore(slices, before)
                    now = prev
                prev = now
                break
            prev = now
            before = None if config.keep_tripping_epoch else _snapshot(slices)
    end = prev
    decision = "kept"
    if config.cancellation:
        why = []
        if end.head_nas > first.head_nas:
            why.append(
                f"head NAS ended above its start ({end.head_nas:.3f} > {first.head_nas:.3f})"
            )
        if end.model_nas > first.model_nas:
            why.append(
                f"model NAS ended above its start ({end.model_nas:.3f} > {first.model_nas:.3f})"
            )
        if why:
            _restore(slices, at_start)
            decision, end = "cancelled", first
            reason = "; ".join([reason, *why]) if reason else "; ".join(why)
    return {"decision": decision, "reason": reason, "epochs": epochs, "start": first, "end": end}


def _stopping(prev: VStats, now: VStats, config: NasaConfig) -> list[str]:
    """The early-stopping rules that fire between two measurements of V."""
    reasons = []
    if now.head_nas > prev.head_nas:
        reasons.append(f"head NAS rose ({prev.head_nas:.3f} -> {now.head_nas:.3f})")
    if now.head_nas < config.rho:
        reasons.append(f"head NAS below rho ({now.head_nas:.3f} < {config.rho})")
    if now.model_nas > prev.model_nas:
        reasons.append(f"model NAS rose ({prev.model_nas:.3f} -> {now.model_nas:.3f})")
    return reasons


def _halts(stats: VStats, tau: float, config: NasaConfig) -> bool:
    if config.halting == "nas":
        return stats.model_nas < tau
    if config.halting == "share_yes":
        return stats.share_yes >= config.halt_share
    return False


def _yes(batch: Batch) -> int:
    if batch.pos_target is None:
        raise NasalensError("nasa: the template has no positive answer token to train towards")
    return batch.pos_target


def _seed(seed: int, index: int, epoch: int) -> int:
    return (seed * 1_000_003 + index * 10_007 + epoch) % (2**63)


def _snapshot(slices: Sequence[ParamSlice]) -> list[Tensor]:
    return [s.param.detach()[s.index].clone() for s in slices]


def _restore(slices: Sequence[ParamSlice], saved: Sequence[Tensor]) -> None:
    with torch.no_grad():
        for s, rows in zip(slices, saved, strict=True):
            s.param[s.index] = rows


class _Guard:
    """Checks after each head that only the allowed rows changed (bit for bit)."""

    def __init__(self, tuned: ModelAdapter, base: ModelAdapter) -> None:
        self.tuned, self.base = tuned.hf_parameters(), base.hf_parameters()
        if self.tuned.keys() != self.base.keys():
            raise AssertionError("the tuned copy and the base model differ in parameters")
        # Rows that earlier heads changed (a resumed run starts with some).
        self.touched: dict[str, Tensor] = {}
        for name, p in self.tuned.items():
            if not torch.equal(p, self.base[name]):
                diff = (p != self.base[name]).reshape(p.shape[0], -1).any(dim=1)
                self.touched[name] = diff.cpu()  # row masks on the CPU, whatever the device
        self.allowed: dict[str, Tensor] = {}
        self.before: dict[str, Tensor] = {}

    def begin(self, slices: Sequence[ParamSlice]) -> None:
        self.allowed = {}
        for s in slices:
            rows = self.allowed.setdefault(s.name, torch.zeros(s.param.shape[0], dtype=torch.bool))
            rows[s.rows if s.dim == 0 else slice(None)] = True  # rows along dim 0
        self.before = {n: self.tuned[n].detach().clone() for n in self.touched}

    def end(self, head: Head) -> None:
        for name, p in self.tuned.items():
            expected = self.before.get(name, self.base[name])
            allowed = self.allowed.get(name)
            if allowed is None:
                same = torch.equal(p, expected)
            else:
                keep = ~allowed.to(p.device)
                same = torch.equal(p[keep], expected[keep])
            if not same:
                raise AssertionError(
                    f"tuning {head} changed parameter {name} outside the rows it may train; "
                    "nothing but the head's query/key rows may move (is weight decay 0?)"
                )
        for name, rows in self.allowed.items():
            old = self.touched.get(name, torch.zeros_like(rows))
            self.touched[name] = old | rows

    def changed(self) -> dict[str, Tensor]:
        """Every tensor that now differs from the base model (whole tensors)."""
        return {
            n: self.tuned[n].detach().clone()
            for n in sorted(self.touched)
            if not torch.equal(self.tuned[n], self.base[n])
        }
