"""Head replacement keeps the backbone bit-identical; a ViT's position embedding follows the resolution."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from raysweep.core.errors import SpecError
from raysweep.finetune.heads import Source, Target, from_checkpoint, head_names, resample_pos_embed, transfer
from raysweep.models import build_model
from raysweep.train.kept import KeptCheckpoint, checkpoint_sha256
from raysweep.train.worker import STATE_FILE, save_state


def pretrained_state(source: Source) -> dict[str, torch.Tensor]:
    """A model's state with every tensor made distinct from a fresh build's (as training would)."""
    torch.manual_seed(0)
    model = build_model(source.ladder, source.rung, num_classes=source.num_classes, in_chans=source.in_chans,
                        image_size=source.image_size)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize(("ladder", "rung", "size"), [("nfnet_cpu", "nfnet_t0", 32), ("nfnet_cpu", "nfnet_t0", 48),
                                                      ("vit_cpu", "vit_t0", 32)])
def test_every_backbone_tensor_loads_bit_identical_and_the_new_head_is_zero(ladder: str, rung: str, size: int) -> None:
    source = Source(ladder, rung, num_classes=10, in_chans=1, image_size=32)
    state = pretrained_state(source)
    model = transfer(source, state, Target(num_classes=5, in_chans=1, image_size=size))
    new = model.state_dict()
    head = head_names(model)
    assert head and all(new[k].shape[0] == 5 and not new[k].any() for k in head)
    backbone = set(new) - head
    assert backbone == set(state) - head  # the same names, the head's aside
    for k in backbone:
        assert new[k].dtype == state[k].dtype and torch.equal(new[k], state[k]), k
    x = torch.randn(2, 1, size, size)
    assert torch.equal(model.eval()(x), torch.zeros(2, 5))  # a zero head: every class starts equal


def test_a_vits_position_embedding_is_resampled_to_the_new_grid_and_kept_at_the_same_size() -> None:
    source = Source("vit_cpu", "vit_t0", num_classes=10, in_chans=1, image_size=32)  # patch 4: an 8x8 grid
    state = pretrained_state(source)
    same = transfer(source, state, Target(num_classes=3, in_chans=1, image_size=32))
    assert torch.equal(same.state_dict()["pos_embed"], state["pos_embed"])  # identity at the same size
    big = transfer(source, state, Target(num_classes=3, in_chans=1, image_size=48))  # a 12x12 grid
    pos = big.state_dict()["pos_embed"]
    assert pos.shape == (1, 1 + 12 * 12, 32)
    assert torch.equal(pos[:, :1], state["pos_embed"][:, :1])  # the class token's entry is not resampled
    assert big(torch.randn(2, 1, 48, 48)).shape == (2, 3)
    # resampling a grid that is constant per channel keeps it constant (bicubic weights sum to one)
    flat = torch.cat([state["pos_embed"][:, :1], torch.arange(32.0).expand(1, 64, 32)], dim=1)
    out = resample_pos_embed(flat, big, (8, 8))
    assert out.shape == (1, 145, 32) and torch.allclose(out[:, 1:], torch.arange(32.0).expand(1, 144, 32), atol=1e-4)


def test_a_resolution_the_model_cannot_take_and_other_channels_are_spec_errors() -> None:
    source = Source("vit_cpu", "vit_t0", num_classes=10, in_chans=1, image_size=32)
    state = pretrained_state(source)
    with pytest.raises(SpecError, match=r"finetune.data.image_size: expected a resolution vit_t0 can take, got 30x30: "
                                        r"expected an image size divisible by the patch size 4"):
        transfer(source, state, Target(num_classes=3, in_chans=1, image_size=30))
    with pytest.raises(SpecError, match="finetune.data: expected downstream images with the pre-training's 1 channels"):
        transfer(source, state, Target(num_classes=3, in_chans=3, image_size=32))


def test_a_state_of_another_rung_is_a_spec_error() -> None:
    state = pretrained_state(Source("nfnet_cpu", "nfnet_t1", num_classes=10, in_chans=1, image_size=32))
    with pytest.raises(SpecError, match="finetune.pretrained: expected a checkpoint of nfnet_t0 as its run records it"):
        transfer(Source("nfnet_cpu", "nfnet_t0", 10, 1, 32), state, Target(5, 1, 32))


def test_from_a_kept_checkpoint_the_backbone_loads_bit_identical_once_its_sha256_matches(tmp_path: Path) -> None:
    source = Source("nfnet_cpu", "nfnet_t0", num_classes=10, in_chans=1, image_size=32)
    state = pretrained_state(source)
    save_state({"model": state, "step": 3, "optimizer": {}}, tmp_path)
    kept = KeptCheckpoint(str(tmp_path), checkpoint_sha256(tmp_path))
    model = from_checkpoint(kept, source, Target(4, 1, 32), run="r1")
    head = head_names(model)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items() if k not in head)
    (tmp_path / STATE_FILE).write_bytes((tmp_path / STATE_FILE).read_bytes()[:-1])
    with pytest.raises(SpecError, match=r"recorded by run r1\) to have SHA-256"):
        from_checkpoint(kept, source, Target(4, 1, 32), run="r1")
