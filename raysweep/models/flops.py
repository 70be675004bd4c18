"""Training FLOPs per example, counted by PyTorch's `FlopCounterMode` on a meta-device model.

Compute is the sweep's x-axis, and on a CPU a step's wall time tracks per-op overhead far more
than arithmetic, so cost is counted in FLOPs (matmuls and convolutions, 2 per multiply-add) and
wall time is kept beside it. Counting runs on the meta device: shapes only, so F7+ costs no memory.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from raysweep.models.ladder import LadderRef, build_model

_aten = torch.ops.aten


def _conv_backward_flop(
    grad_out_shape: list[int],
    x_shape: list[int],
    w_shape: list[int],
    bias: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    transposed: bool,
    output_padding: Any,
    groups: int,
    output_mask: list[bool],
    out_shape: Any,
) -> int:
    """Backward FLOPs of a convolution: the input gradient and the weight gradient each cost one
    forward pass, 2 x batch x positions x weight elements (the weight holds in_channels / groups).

    Replaces torch 2.9's formula, which counts a grouped conv's weight gradient as if every input
    channel met every output channel, `groups` times too many: the NFNets' grouped 3x3 convs made
    their backward pass look like 3x the forward instead of 2x.
    """
    # a transposed conv visits every input position, a plain one every output position
    positions = math.prod((x_shape if transposed else grad_out_shape)[2:])
    one_pass = 2 * grad_out_shape[0] * positions * math.prod(w_shape)
    return one_pass * (int(output_mask[0]) + int(output_mask[1]))


_CUSTOM_FLOPS = {_aten.convolution_backward: _conv_backward_flop}


def _count(family: LadderRef, rung: str, num_classes: int, in_chans: int, image_size: int, backward: bool) -> float:
    with torch.device("meta"):
        model = build_model(family, rung, num_classes=num_classes, in_chans=in_chans, image_size=image_size)
        # two examples, not one: a BatchNorm in training mode (timm's ResNets) refuses a batch of one
        # when the last stage ends at 1x1; FLOPs are linear in the batch, so halve the count
        x = torch.empty(2, in_chans, image_size, image_size)
        with FlopCounterMode(display=False, custom_mapping=_CUSTOM_FLOPS) as counter:
            out = model(x)
            if backward:
                # no input gradient: training never differentiates the image
                out.sum().backward()
    return float(counter.get_total_flops()) / 2


@functools.cache
def flops_per_example(family: LadderRef, rung: str, *, num_classes: int, in_chans: int, image_size: int) -> float:
    """Training FLOPs for one example: forward plus backward (about 3x the forward)."""
    return _count(family, rung, num_classes, in_chans, image_size, backward=True)


@functools.cache
def forward_flops_per_example(
    family: LadderRef, rung: str, *, num_classes: int, in_chans: int, image_size: int
) -> float:
    """Inference FLOPs for one example (the forward pass alone), e.g. to cost evaluation."""
    return _count(family, rung, num_classes, in_chans, image_size, backward=False)
