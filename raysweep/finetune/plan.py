"""What a fine-tuning sweep will run, computed before anything starts: `raysweep finetune --dry-run`.

From the pre-training trials (rows `raysweep.tracking.read_trials` gave) and the two data shapes,
`make_plan` chooses the checkpoints (`select`), checks that each is kept and that its model can take
the downstream data (`heads.check_target`), and lists the fine-tuning trials: for each choice, each
LR the searcher will try and each fine-tuning seed s, from the choice's pre-training seed
s mod (its seeds), so that seeds of both stages vary in the paired comparison. With `baseline`,
each chosen rung is also trained from scratch at the same budget, LR grid and seeds.

FLOPs follow the sweep's rule: measured FLOPs per example of the rung at the downstream shape,
times the examples the budget buys (`plan_steps`; repeated augmentation leaves the examples, so
the FLOPs, unchanged). `verify` re-hashes every checkpoint the trials will load and compares it with
the SHA-256 its run recorded. Pure (no Ray, MLflow or Optuna).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from raysweep.core import cost
from raysweep.core.errors import SpecError
from raysweep.core.records import FinetuneKey
from raysweep.data.shape import DataShape
from raysweep.finetune.heads import Source, Target, check_target
from raysweep.finetune.select import Choice, Pretrained, Selection, require_checkpoints, select
from raysweep.finetune.spec import FinetuneSpace
from raysweep.models import ladder_of
from raysweep.search import searcher_row
from raysweep.train.kept import KeptCheckpoint, checkpoint_bytes, verify_checkpoint

_KEY: Final = "finetune"


@dataclass(frozen=True)
class FinetuneTrial:
    """One fine-tuning run: from which checkpoint (None: the from-scratch baseline), at which LR and seed."""

    model: str
    choice: Choice | None  # None for the baseline
    checkpoint: Pretrained | None
    lr: float | None  # None: the searcher picks it as results come (monotone)
    seed: int
    repeats: int = 1  # repeated augmentation's k for this run (1: off)

    def key(self, study: str) -> FinetuneKey | None:
        """Its durable key (None while the searcher has not picked its LR)."""
        if self.lr is None:
            return None
        if self.checkpoint is None:
            return FinetuneKey.scratch(study, self.model, self.lr, self.seed, repeats=self.repeats)
        assert self.checkpoint.trial_key, "a chosen checkpoint's run records its trial key"
        return FinetuneKey(study, self.checkpoint.trial_key, self.lr, self.seed, repeats=self.repeats)


@dataclass(frozen=True)
class ChoicePlan:
    choice: Choice
    flops_per_run: float  # fine-tuning FLOPs of one run
    trials: tuple[FinetuneTrial, ...]


@dataclass(frozen=True)
class FinetunePlan:
    space: FinetuneSpace
    selection: Selection
    choices: tuple[ChoicePlan, ...]
    baseline: tuple[FinetuneTrial, ...]
    baseline_flops: dict[str, float]  # per run, by rung
    sources: dict[str, Source]  # by rung: what each chosen model is rebuilt from
    shape: DataShape  # the downstream data's
    steps: int
    examples: int  # per run
    lrs: tuple[float, ...]  # the grid the searcher draws from
    per_checkpoint: int  # LRs a checkpoint's searcher tries (the grid, or about 2)
    source: str

    @property
    def flops(self) -> float:
        return sum(c.flops_per_run * len(c.trials) for c in self.choices)

    @property
    def baseline_total(self) -> float:
        return sum(self.baseline_flops[t.model] for t in self.baseline)

    def checkpoints(self) -> list[Pretrained]:
        """The distinct checkpoints the trials load, in plan order."""
        seen: dict[str, Pretrained] = {}
        for c in self.choices:
            for t in c.trials:
                if t.checkpoint is not None:
                    seen.setdefault(t.checkpoint.checkpoint, t.checkpoint)
        return list(seen.values())


def source_of(t: Pretrained, space: FinetuneSpace, pre_shape: DataShape | None) -> Source:
    """What a checkpoint's model is rebuilt from: the file's ladder, the run's rung, and the data shape
    the run records (or, for a run that records none, the pre-training data's `pre_shape`)."""
    family = space.sweep.ladder.family
    if t.family and t.family != family:
        raise SpecError(f"expected checkpoints of the file's ladder {family}, got {t.family} from run {t.run_id} "
                        f"({t.cell})", key=f"{_KEY}.pretrained")
    if all(t.shape):
        return Source(ladder_of(space.sweep.ladder), t.model, *t.shape)
    if pre_shape is None:
        raise SpecError(f"expected run {t.run_id} ({t.cell}) to record the data shape its model was built at, got "
                        f"none; make the pre-training data readable here (data:) to rebuild it", key="data")
    return Source(ladder_of(space.sweep.ladder), t.model, pre_shape.num_classes, pre_shape.in_chans, pre_shape.image_size)


def make_plan(space: FinetuneSpace, trials: list[Pretrained], pre_shape: DataShape | None, shape: DataShape, *,
              source: str) -> FinetunePlan:
    """The checkpoints, trials and FLOPs of a fine-tuning sweep; one-line SpecErrors for bad input.
    `pre_shape`: the pre-training data's shape, needed only for runs that record none."""
    from raysweep.models import flops_per_example, ladder
    from raysweep.train.recipe import plan_steps

    sweep, ft = space.sweep, space.finetune
    sources: dict[str, Source] = {}
    try:
        selection = require_checkpoints(select(trials, ft.select.rule_of(), source=source), source=source)
        ref = ladder_of(sweep.ladder)
        for c in selection.choices:
            for t in c.trials:  # a run of another family is named here, before its rung is looked up
                built = source_of(t, space, pre_shape)
                if sources.setdefault(c.model, built) != built:
                    raise SpecError(f"expected every run of {c.model} built alike, got {sources[c.model]} and "
                                    f"{built} (run {t.run_id})", key=f"{_KEY}.pretrained")
            try:
                ladder(ref).rung(c.model)
            except SpecError as err:
                raise SpecError(f"expected checkpoints of the file's ladder, got {c.model} from {source}: "
                                f"{err.detail}", key=f"{_KEY}.pretrained") from None
            check_target(sources[c.model], Target(shape.num_classes, shape.in_chans, shape.image_size))
        batch = ft.batch(sweep)
        try:
            step_plan = plan_steps(n_train=shape.n_train, batch_size=batch, epochs=ft.epochs,
                                   warmup_fraction=sweep.optim.warmup_fraction)
        except ValueError as err:
            raise SpecError(str(err), key=f"{_KEY}.epochs") from None
    except SpecError as err:
        raise err.located(file=space.file) from None
    lrs = ft.lr.grid()
    per = searcher_row(ft.searcher).trials_per_cell(n_lrs=len(lrs), budget=len(lrs))
    kw = {"num_classes": shape.num_classes, "in_chans": shape.in_chans, "image_size": shape.image_size}
    fpe = {c.model: flops_per_example(ref, c.model, **kw) for c in selection.choices}
    # grid: every LR is known now; monotone: about `per` LRs, which the searcher picks as results come
    tried: tuple[float | None, ...] = lrs if ft.searcher == "grid" else (None,) * per
    plans = []
    for c in selection.choices:
        runs = tuple(FinetuneTrial(c.model, c, c.trials[s % len(c.trials)], lr, s, k)
                     for k in ft.repeat_values() for s in range(ft.seeds) for lr in tried)
        plans.append(ChoicePlan(c, fpe[c.model] * step_plan.examples, runs))
    rungs = list(dict.fromkeys(c.model for c in selection.choices)) if ft.baseline else []
    baseline = tuple(FinetuneTrial(m, None, None, lr, s, k) for m in rungs for k in ft.repeat_values()
                     for s in range(ft.seeds) for lr in tried)
    return FinetunePlan(space=space, selection=selection, choices=tuple(plans), baseline=baseline,
                        baseline_flops={m: fpe[m] * step_plan.examples for m in rungs}, sources=sources,
                        shape=shape, steps=step_plan.total_steps, examples=step_plan.examples, lrs=lrs,
                        per_checkpoint=per, source=source)


def verify(plan: FinetunePlan) -> int:
    """Re-hash every checkpoint the plan loads against its recorded SHA-256; the bytes read."""
    total = 0
    for t in plan.checkpoints():
        try:
            folder = verify_checkpoint(KeptCheckpoint(t.checkpoint, t.checkpoint_sha256), run=t.run_id)
        except SpecError as err:
            raise SpecError(err.detail, file=plan.space.file, key=f"{_KEY}.pretrained ({err.key})") from None
        total += checkpoint_bytes(folder)
    return total


def report(plan: FinetunePlan, *, verified_bytes: int | None = None) -> str:
    """The dry run's text: what is chosen and why, the trials, and their FLOPs."""
    from raysweep.train.kept import format_bytes

    sp, ft = plan.space, plan.space.finetune
    sh = plan.shape
    data = (f"{ft.data.dataset} ASSUMED from finetune.data.assume, not read: {sh.n_train:,} train examples"
            if sh.assumed else f"{ft.data.dataset} ({sh.n_train} train / {sh.n_val} val)")
    aug = ft.augmentation()
    crop = {"pad": f"pad-and-crop by up to {aug.pad}px", "resized": "random-resized crop",
            "none": "no crop"}[aug.crop]
    k = ft.repeated_augmentation
    pre = next(iter(plan.sources.values()))
    lines = [
        f"finetune {sp.sweep.name}: from {plan.source}",
        f"  pre-training frontier: {', '.join(plan.selection.frontier) or '(rule cells)'}",
        (f"downstream data {data}, {sh.num_classes} classes, {sh.in_chans} channel(s) at {sh.image_size}px; "
        f"pre-trained at {pre.image_size}px on {pre.num_classes} classes"),
        f"budget {ft.epochs:g} epochs at batch {ft.batch(sp.sweep)}: {plan.steps:,} steps, {plan.examples:,} examples "
        f"per run" + (f" (repeated augmentation k={k}: {ft.batch(sp.sweep) // k} distinct images x {k} copies a "
                      f"batch, the same examples and FLOPs; every run also without it, k=1, for the "
                      f"comparison)" if k > 1 else ""),
        f"augmentation: {crop}, {'with' if aug.flip else 'no'} flips; head: {ft.head.init}-initialised",
        (f"LR grid ({len(plan.lrs)}): {', '.join(f'{x:g}' for x in plan.lrs)}; searcher {ft.searcher}: "
        f"about {plan.per_checkpoint} LRs per checkpoint, {ft.seeds} seeds each"),
        "",
        (f"{'chosen checkpoint':<26} {'pre-train loss':>14} {'pre-train FLOPs':>15} {'v4 core-h':>10} "
        f"{'ckpts':>5} {'runs':>5} {'FLOPs/run':>10}"),
    ]
    for c in plan.choices:
        ch = c.choice
        lines.append(f"{ch.name:<26} {ch.loss:>14.4f} {ch.compute:>15.3g} "
                     f"{cost.format_hours(cost.core_hours(ch.compute)):>10} {len(ch.trials):>5} "
                     f"{len(c.trials):>5} {c.flops_per_run:>10.3g}")
        for r in ch.reasons:
            lines.append(f"    {r.why}: {r.text}")
    if plan.selection.missing:
        lines += ["", "not compared (no such neighbour):"] + [f"  {m}" for m in plan.selection.missing]
    n_ft = sum(len(c.trials) for c in plan.choices)
    lines += ["", (f"{len(plan.choices)} checkpoints, {n_ft} fine-tuning runs, about {plan.flops:.3g} FLOPs "
                  f"({cost.format_hours(cost.core_hours(plan.flops))} TPU-v4-equivalent core-hours)")]
    if plan.baseline:
        rungs = ", ".join(plan.baseline_flops)
        lines.append(f"from-scratch baseline ({rungs}): {len(plan.baseline)} runs, about {plan.baseline_total:.3g} "
                     f"FLOPs")
    else:
        lines.append("from-scratch baseline: off (finetune.baseline: false)")
    if verified_bytes is not None:
        lines.append(f"checkpoints: {len(plan.checkpoints())} to load, SHA-256 checked "
                     f"({format_bytes(verified_bytes)} read)")
    return "\n".join(lines)
