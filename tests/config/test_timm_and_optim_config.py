"""Config for ladders written in the file (`ladder.timm`) and for the optimiser choice (`optim.name`):
every mistake is one line naming the file and the dotted key, found before anything starts."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from raysweep.cli import main
from raysweep.cli.preflight import load_checked
from raysweep.config import load_spec
from raysweep.core.errors import SpecError

RUNGS = [
    {"name": "s", "model": "resnet18", "kwargs": {"layers": [1, 1, 1, 1], "channels": [8, 16, 32, 64]}},
    {"name": "m", "model": "resnet18", "kwargs": {"layers": [1, 1, 1, 1], "channels": [16, 32, 64, 128]}},
]
BASE: dict[str, Any] = {"name": "t", "ladder": {"family": "tiny_resnets", "timm": RUNGS}, "epochs": [1]}
ADAMW_LR = {"base": 1e-3, "low": 2.5e-4, "high": 4e-3}


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    p = tmp_path / "space.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def patched(path: str, value: Any) -> dict[str, Any]:
    """BASE with one value replaced at a dotted path (list items by index)."""
    data = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[int(last) if isinstance(node, list) else last] = value
    return data


def err(tmp_path: Path, data: dict[str, Any]) -> str:
    path = write(tmp_path, data)
    with pytest.raises(SpecError) as info:
        load_checked(path)  # the file's checks, then preflight's model checks
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg, msg
    return msg


@pytest.mark.parametrize(
    "path, value, key, expected",
    [
        ("ladder.timm.1.model", "resnet9000", "ladder.timm[1].model", "expected a timm model name"),
        ("ladder.timm.1.kwargs", {"layers": [1, 1, 1, 1], "depthh": 2}, "ladder.timm[1].kwargs",
         "unexpected keyword argument 'depthh'"),
        ("ladder.timm.0.kwargs", {"img_size": 32}, "ladder.timm[0].kwargs.img_size", "set from the data"),
        ("ladder.timm.0.kwargs", {"num_classes": 5}, "ladder.timm[0].kwargs.num_classes", "set from the data"),
        ("ladder.timm.0.kwargs", {"pretrained": True}, "ladder.timm[0].kwargs.pretrained", "from scratch"),
        ("ladder.timm.0.kwargs", [1, 2], "ladder.timm[0].kwargs", "expected a mapping"),
        ("ladder.timm.0.kwargs", {"when": yaml.safe_load("2020-01-01")}, "ladder.timm[0].kwargs.when",
         "expected a number, string"),
        ("ladder.timm.1.name", "s", "ladder.timm[1].name", "distinct rung names"),
        ("ladder.timm.0.name", "a b", "ladder.timm[0].name", "expected a name"),
        ("ladder.timm.0.bogus", 1, "ladder.timm[0].bogus", "unknown key"),
        ("ladder.family", "nfnet_cpu", "ladder.family", "a built-in ladder"),
        ("ladder.rungs", ["s", "xl"], "ladder.rungs[1]", "a rung defined under ladder.timm"),
        ("ladder.rungs", ["m", "s"], "ladder.rungs", "ascending size"),
        ("ladder.timm", [RUNGS[1], RUNGS[0]], "ladder.timm[1]", "ascending in measured parameter count"),
    ],
)
def test_ladder_mistakes_name_the_key(tmp_path: Path, path: str, value: Any, key: str, expected: str) -> None:
    msg = err(tmp_path, patched(path, value))
    assert f": {key}: " in msg and expected in msg, msg


def test_non_ascending_rungs_show_the_measured_counts(tmp_path: Path) -> None:
    from raysweep.models import ladder_of, param_count

    msg = err(tmp_path, patched("ladder.timm", [RUNGS[1], RUNGS[0]]))
    ref = ladder_of(load_spec(write(tmp_path, BASE)).ladder)
    # measured at 3 channels: the data's are unknown until it is read (the CLI checks again then)
    m, s = (param_count(ref, r, num_classes=10, in_chans=3, image_size=32) for r in ("m", "s"))
    assert f"got m {m:,}, s {s:,} (at 32x32, 3 channels, 10 classes)" in msg and m > 3 * s


def test_optim_defaults_follow_the_chosen_optimiser(tmp_path: Path) -> None:
    sgd = load_spec(write(tmp_path, BASE)).optim
    assert (sgd.name, sgd.momentum, sgd.nesterov, sgd.betas, sgd.agc_clip, sgd.weight_decay) == (
        "sgd", 0.9, True, None, 0.01, 1e-5)
    adamw = load_spec(write(tmp_path, {**BASE, "optim": {"name": "adamw"}, "lr": ADAMW_LR})).optim
    assert (adamw.momentum, adamw.nesterov, adamw.betas, adamw.agc_clip, adamw.weight_decay) == (
        None, None, (0.9, 0.999), 0.0, 0.05)
    assert adamw.warmup_fraction == 0.1 and sgd.warmup_fraction == 0.05
    # explicit values win over the optimiser's defaults
    own = load_spec(write(tmp_path, {**BASE, "optim": {"name": "adamw", "agc_clip": 0.1, "betas": [0.9, 0.95]},
                                     "lr": ADAMW_LR})).optim
    assert own.agc_clip == 0.1 and own.betas == (0.9, 0.95)


@pytest.mark.parametrize(
    "patch, key, expected",
    [
        ({"optim": {"name": "adamw", "momentum": 0.9}, "lr": ADAMW_LR}, "optim.momentum", "an sgd setting"),
        ({"optim": {"name": "adamw", "nesterov": True}, "lr": ADAMW_LR}, "optim.nesterov", "an sgd setting"),
        ({"optim": {"betas": [0.9, 0.99]}}, "optim.betas", "an adamw setting"),
        ({"optim": {"name": "adamw", "betas": [0.9]}, "lr": ADAMW_LR}, "optim.betas", "two numbers"),
        ({"optim": {"name": "adamw", "betas": [0.9, 1.0]}, "lr": ADAMW_LR}, "optim.betas", "two numbers"),
        ({"optim": {"name": "adam"}}, "optim.name", "expected one of ['sgd', 'adamw']"),
        ({"optim": {"name": "adamw"}}, "lr.high", "an LR grid for AdamW"),  # SGD's default grid reaches 3.2
    ],
)
def test_optim_mistakes_name_the_key(tmp_path: Path, patch: dict[str, Any], key: str, expected: str) -> None:
    msg = err(tmp_path, {**BASE, **patch})
    assert f": {key}: " in msg and expected in msg, msg


def test_cli_bad_timm_name_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, patched("ladder.timm.1.model", "resnet9000"))
    assert main(["run", "--dry-run", str(path)]) == 2
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"raysweep: error: {path}: ladder.timm[1].model: "), out.err
    assert out.out == ""


def test_dry_run_lists_the_measured_params_and_flops(capsys: pytest.CaptureFixture[str]) -> None:
    from raysweep.models import flops_per_example, ladder_of, param_count
    from raysweep.train.recipe import plan_steps

    path = Path(__file__).resolve().parents[2] / "search_spaces/timm_resnet_demo.yaml"
    assert main(["run", "--dry-run", str(path)]) == 0
    out = capsys.readouterr().out
    ref = ladder_of(load_spec(path).ladder)
    mnist = {"num_classes": 10, "in_chans": 1, "image_size": 32}  # the data's real shape, not validation's
    steps = plan_steps(n_train=4500, batch_size=64, epochs=2, warmup_fraction=0.05)
    for rung in ("resnet_s", "resnet_m", "resnet_l"):
        n, fpe = param_count(ref, rung, **mnist), flops_per_example(ref, rung, **mnist)
        row = next(line.split() for line in out.splitlines() if line.startswith(f"{rung}@2 "))
        assert row[1:] == [f"{n:,}", str(steps.total_steps), f"{steps.examples:,}", f"{fpe * steps.examples:.3g}"]
    assert "9 cells" in out
