"""Fine-tuning: from a pre-training sweep's kept checkpoints to downstream accuracy (issue 14).

What it holds:
- `select`: which pre-trained checkpoints to fine-tune, each with the reason it was chosen (the
  paper's comparison at each compute level of the pre-training frontier: the loss-optimal cell and
  its larger- and smaller-model neighbours at about the same compute, optionally its larger LR);
- `heads`: a model rebuilt from what its run records, its backbone loaded bit-identical, its
  classifier replaced for the new classes (zero-initialised), a ViT's position embedding resampled
  on a change of resolution;
- `repeat_aug`: repeated augmentation (k augmented copies of batch/k distinct images per batch),
  deterministic per (seed, epoch) and resumable, with the real augmentations it applies;
- `spec`: the search space's `finetune:` section, a frozen validated `FinetuneSpec`;
- `plan`: what `raysweep finetune --dry-run` prints (the chosen checkpoints, why, and the FLOPs).
The command line's side (reading the pre-training rows from MLflow) is `raysweep.cli.finetune`.

What it may import: torch, timm, numpy and the layers below it (`core`, `config`, `models`, `data`,
`results`, `analysis`, `search`'s door, `train.kept`). Not Ray, MLflow or Optuna: every module is
tested alone.
"""
