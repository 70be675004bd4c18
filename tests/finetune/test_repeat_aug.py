"""Repeated augmentation: equal compute, k copies per distinct image in its batch, exact resumption."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from raysweep.core.errors import SpecError
from raysweep.data import TensorImageSet
from raysweep.finetune.repeat_aug import Augment, RepeatedOrder, default_augment, repeated_batches
from raysweep.train.recipe import plan_steps

N, BATCH, SIZE = 100, 8, 12
PAD2 = Augment(crop="pad", pad=2)


def dataset() -> TensorImageSet:
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (N, 1, SIZE, SIZE), dtype=torch.uint8, generator=g)
    labels = torch.arange(N)  # the label is the image's own index: batches say which images they hold
    return TensorImageSet(images, labels, torch.arange(N), mean=[0.5], std=[0.25])


def run(k: int, *, epochs: float = 1.5, start: int = 0, augment: Augment | None = PAD2,
        rank: int = 0, world: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    data = dataset()
    plan = plan_steps(n_train=N, batch_size=BATCH, epochs=epochs, warmup_fraction=0.0)
    order = RepeatedOrder(n=N, batch_size=BATCH, repeats=k, seed=3)
    assert order.steps_per_epoch == plan.steps_per_epoch  # the same notion of an epoch as the budget
    return list(repeated_batches(data._gather, order, augment, start=start, stop=plan.total_steps, rank=rank,
                                 world=world))


def test_examples_processed_are_equal_with_and_without_repeats() -> None:
    plain, repeated = run(1), run(4)
    assert len(plain) == len(repeated) == 18  # floor(1.5 * 100 / 8)
    assert sum(len(y) for _, y in plain) == sum(len(y) for _, y in repeated) == 18 * BATCH


def test_each_distinct_image_appears_k_times_in_its_batch_each_copy_augmented_apart() -> None:
    for x, y in run(4):
        counts = Counter(y.tolist())
        assert len(counts) == BATCH // 4 and set(counts.values()) == {4}
        assert y.tolist() == [i for i in dict.fromkeys(y.tolist()) for _ in range(4)]  # copies side by side
        copies = x.view(BATCH // 4, 4, 1, SIZE, SIZE)
        assert any(not torch.equal(c[0], c[i]) for c in copies for i in range(1, 4))  # not four equal copies


def test_an_epoch_of_repeats_shows_n_over_k_distinct_images_and_the_next_epoch_others() -> None:
    order = RepeatedOrder(n=N, batch_size=BATCH, repeats=4, seed=3)
    epoch0 = torch.cat([order.positions(s) for s in range(order.steps_per_epoch)])
    epoch1 = torch.cat([order.positions(s) for s in range(order.steps_per_epoch, 2 * order.steps_per_epoch)])
    assert len(set(epoch0.tolist())) == 12 * 2  # 12 steps x 2 distinct images
    assert set(epoch0.tolist()) != set(epoch1.tolist())  # reshuffled per (seed, epoch)
    again = RepeatedOrder(n=N, batch_size=BATCH, repeats=4, seed=3)
    assert all(torch.equal(order.positions(s), again.positions(s)) for s in range(30))  # deterministic


def test_k_of_one_is_the_plain_order_of_the_pre_training_loop() -> None:
    data = dataset()
    plain = [y for _, y in data.batches(BATCH, seed=3, epoch=0)]
    ours = [y for _, y in run(1, epochs=1.0, augment=None)]
    assert len(plain) == len(ours) and all(torch.equal(a, b) for a, b in zip(plain, ours, strict=True))


@pytest.mark.parametrize("start", [5, 12, 13])  # mid-epoch, at the epoch boundary, just after it
def test_resuming_mid_run_reads_exactly_the_remaining_batches(start: int) -> None:
    full = run(4)
    resumed = run(4, start=start)
    assert len(resumed) == len(full) - start
    for (xa, ya), (xb, yb) in zip(full[start:], resumed, strict=True):
        assert torch.equal(ya, yb) and torch.equal(xa, xb)  # the augmentation too


def test_the_ranks_shards_make_up_the_global_batch() -> None:
    full = run(4)
    shards = [run(4, rank=r, world=2) for r in range(2)]
    for i, (x, y) in enumerate(full):
        assert torch.equal(torch.cat([shards[0][i][1], shards[1][i][1]]), y)
        assert torch.equal(torch.cat([shards[0][i][0], shards[1][i][0]]), x)


def test_augmentations_keep_the_shape_and_a_zero_pad_crop_is_the_identity() -> None:
    x = torch.randn(6, 1, SIZE, SIZE)
    g = torch.Generator().manual_seed(0)
    for aug in (Augment(crop="pad", pad=3, flip=True), Augment(crop="resized", flip=False), Augment(crop="none")):
        assert aug.apply(x, aug.draw(6, SIZE, g)).shape == x.shape
    same = Augment(crop="pad", pad=0)
    assert torch.equal(same.apply(x, same.draw(6, SIZE, g)), x)
    flip = Augment(crop="none", flip=True)
    params = flip.draw(6, SIZE, torch.Generator().manual_seed(5))
    out = flip.apply(x, params)
    for i, f in enumerate(params[:, 4].tolist()):
        assert torch.equal(out[i], x[i].flip(-1) if f else x[i])


def test_digits_are_never_flipped_and_a_folder_of_photos_is() -> None:
    assert not default_augment("mnist5k").flip and not default_augment("digits").flip
    assert default_augment("fashion_mnist").flip
    assert default_augment("image_folder") == Augment(crop="resized", flip=True)


def test_repeats_that_do_not_divide_the_batch_are_a_spec_error() -> None:
    with pytest.raises(SpecError, match="finetune.repeated_augmentation: expected repeated_augmentation to be an "
                                        "integer >= 1 dividing the batch size 8, got 3"):
        RepeatedOrder(n=N, batch_size=BATCH, repeats=3, seed=0)
