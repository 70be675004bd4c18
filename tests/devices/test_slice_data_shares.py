"""The hosts of one trial on a fake TPU slice read disjoint shares that together are each global
batch exactly, counted by example id, from shards.

The slices are those of test_fake_tpu_slices.py (2 v4-16 slices of 2 hosts). That slow Ray test
cannot show the shares: torch_xla has no multi-process CPU mode, so each fake host there is an XLA
world of one. Here each host's share is keyed as the device layer keys it on a real slice
(`data_share(process index, process count)`, PJRT's process index being the host's TPU worker id,
`TPU_WORKER_ID` in the fake host's environment), and read through the shard reader the loop calls;
the examples it reads are recorded by id where the reader gathers them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from raysweep.config import DataSpec
from raysweep.data import load_splits
from raysweep.data.convert import convert
from raysweep.data.shards import ShardImageSet
from raysweep.devices._xla import data_share  # pure: no torch_xla needed
from tests.devices.test_fake_tpu_slices import HOSTS, SLICES

BATCH = 64


def test_the_hosts_of_a_slice_read_disjoint_shares_that_cover_each_global_batch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = str(tmp_path / "digits")
    convert("digits", url, shard_examples=200)  # 9 shards
    train = load_splits(DataSpec(dataset="shards", url=url, loader_workers=0)).train
    read: list[list[int]] = []  # the example ids of each gather, in order
    gather = ShardImageSet._gather_pixels

    def recording(self: ShardImageSet, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        read.append(self.ids[positions].tolist())
        return gather(self, positions)

    monkeypatch.setattr(ShardImageSet, "_gather_pixels", recording)
    whole = list(train.batches(BATCH, seed=3, epoch=2))  # one host reading every example
    global_ids, read[:] = list(read), []
    steps = len(train) // BATCH
    assert len(global_ids) == steps and all(len(b) == BATCH for b in global_ids)

    for name in SLICES:
        hosts = [{"TPU_NAME": name, "TPU_WORKER_ID": str(w)} for w in range(HOSTS)]  # as the fake slice sets them
        shares, batches = [], []
        for env in hosts:
            rank, world = data_share(int(env["TPU_WORKER_ID"]), len(hosts))
            assert (rank, world) == (int(env["TPU_WORKER_ID"]), HOSTS)
            batches.append(list(train.batches(BATCH, seed=3, epoch=2, rank=rank, world=world)))
            shares.append(list(read))
            read.clear()
        for step in range(steps):
            per_host = [shares[h][step] for h in range(HOSTS)]
            assert all(len(s) == BATCH // HOSTS for s in per_host)
            counted = Counter(i for s in per_host for i in s)
            assert counted == Counter(global_ids[step]) and max(counted.values()) == 1  # disjoint, exactly covering
            assert [i for s in per_host for i in s] == global_ids[step]  # in the global batch's order
            x = torch.cat([batches[h][step][0] for h in range(HOSTS)])
            assert torch.equal(x, whole[step][0])
    assert data_share(0, 1) == (0, 1)  # a single host reads the whole batch
