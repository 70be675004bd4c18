"""The `finetune:` section: defaults, the file's own experiment, and one-line errors naming file and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from raysweep.core.errors import SpecError
from raysweep.finetune.repeat_aug import Augment
from raysweep.finetune.select import SelectRule
from raysweep.finetune.spec import FinetuneSpec, finetune_from_dict, load_finetune

ROOT = Path(__file__).resolve().parents[2]
DEMO = yaml.safe_load((ROOT / "search_spaces/demo.yaml").read_text())
SECTION = {"data": {"dataset": "digits"}, "epochs": 2, "lr": {"base": 0.1, "factor": 2, "low": 0.025, "high": 0.4}}


def space(**section: Any) -> dict[str, Any]:
    return {**DEMO, "finetune": {**SECTION, **section}}


def test_a_minimal_section_takes_every_default_and_the_files_own_experiment() -> None:
    sp = finetune_from_dict(space(), file="ft.yaml")
    ft = sp.finetune
    assert isinstance(ft, FinetuneSpec) and ft.epochs == 2.0 and ft.data.dataset == "digits"
    assert sp.experiment == "raysweep-demo"  # pretrained.experiment null: the sweep's own
    assert ft.select.rule_of() == SelectRule()
    assert (ft.searcher, ft.seeds, ft.head.init, ft.repeated_augmentation, ft.baseline) == ("grid", 3, "zero", 1, True)
    assert ft.batch(sp.sweep) == 64
    assert ft.augmentation() == Augment(crop="pad", pad=4, flip=False)  # digits: never flipped
    assert ft.lr.grid() == (0.025, 0.05, 0.1, 0.2, 0.4)


def test_every_key_given() -> None:
    sp = finetune_from_dict(space(pretrained={"experiment": "pre", "sweeps": ["demo*"]},
                                  select={"rule": "cells", "cells": ["nfnet_t1@2"], "larger_lr": True, "within": 2},
                                  searcher="monotone", seeds=5, batch_size=32, head={"init": "timm"},
                                  repeated_augmentation=4, augment={"crop": "resized", "flip": True}, baseline=False))
    ft = sp.finetune
    assert sp.experiment == "pre" and ft.pretrained.sweeps == ("demo*",)
    assert ft.select.rule_of() == SelectRule(rule="cells", cells=("nfnet_t1@2",), larger_lr=True, within=2.0)
    assert ft.augmentation() == Augment(crop="resized", pad=4, flip=True)
    assert ft.batch(sp.sweep) == 32 and ft.repeated_augmentation == 4


BAD = [
    ("missing section", None, "finetune: expected a finetune: section"),
    ("unknown key", {"epoch": 2}, "finetune.epoch: unknown key; expected one of"),
    ("missing epochs", {"epochs": ...}, "finetune.epochs: required key is missing"),
    ("epochs a string", {"epochs": "two"}, "finetune.epochs: expected a number, got str 'two'"),
    ("epochs zero", {"epochs": 0}, "finetune.epochs: expected a number > 0"),
    ("unknown rule", {"select": {"rule": "best"}}, "finetune.select.rule: expected one of ['frontier', 'cells']"),
    ("cells without rule", {"select": {"cells": ["a@1"]}}, "finetune.select.cells: expected no cells with rule frontier"),
    ("rule cells empty", {"select": {"rule": "cells"}}, "finetune.select.cells: expected a non-empty list"),
    ("bad cell", {"select": {"rule": "cells", "cells": ["nfnet_t1"]}},
     "finetune.select.cells[0]: expected a cell name model@epochs"),
    ("within below 1", {"select": {"within": 0.5}}, "finetune.select.within: expected a factor >= 1"),
    ("bad data", {"data": {"dataset": "imagenet"}}, "finetune.data.dataset: expected one of"),
    ("bad lr", {"lr": {"base": 1, "low": 2, "high": 4}}, "finetune.lr.base: `low <= base <= high` must hold"),
    ("bad searcher", {"searcher": "tpe"}, "finetune.searcher: expected one of ['grid', 'monotone']"),
    ("seeds zero", {"seeds": 0}, "finetune.seeds: expected an integer in [1, 100]"),
    ("repeats a float", {"repeated_augmentation": 1.5}, "finetune.repeated_augmentation: expected an integer"),
    ("repeats not dividing", {"repeated_augmentation": 3},
     "finetune.repeated_augmentation: expected repeated_augmentation to divide the batch size 64, got 3"),
    ("bad head", {"head": {"init": "random"}}, "finetune.head.init: expected one of ['zero', 'timm']"),
    ("bad crop", {"augment": {"crop": "cutout"}}, "finetune.augment.crop: expected one of"),
    ("negative pad", {"augment": {"pad": -1}}, "finetune.augment.pad: expected an integer >= 0"),
    ("baseline not bool", {"baseline": "yes"}, "finetune.baseline: expected true or false"),
    ("pretrained blank", {"pretrained": {"experiment": " "}}, "finetune.pretrained.experiment: expected an MLflow"),
]


@pytest.mark.parametrize(("patch", "needle"), [(p, n) for _, p, n in BAD], ids=[i for i, _, _ in BAD])
def test_bad_sections_are_one_line_errors_naming_file_and_key(patch: dict[str, Any] | None, needle: str) -> None:
    raw = {**DEMO} if patch is None else space()
    if patch is not None:
        for k, v in patch.items():
            if v is ...:
                del raw["finetune"][k]
            else:
                raw["finetune"][k] = v
    with pytest.raises(SpecError) as err:
        finetune_from_dict(raw, file="ft.yaml")
    msg = str(err.value)
    assert msg.startswith("ft.yaml: ") and needle in msg and "\n" not in msg, msg


def test_the_sweep_part_is_checked_as_a_sweep(tmp_path: Path) -> None:
    raw = space()
    raw["batch_size"] = "big"
    with pytest.raises(SpecError, match="ft.yaml: batch_size: expected an integer"):
        finetune_from_dict(raw, file="ft.yaml")


def test_load_finetune_reads_a_file_and_names_it_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "ft.yaml"
    path.write_text(yaml.safe_dump(space()))
    assert load_finetune(path).file == str(path)
    path.write_text("finetune: [\n")
    with pytest.raises(SpecError, match=rf"{path}: expected valid YAML, got a syntax error at line"):
        load_finetune(path)
    with pytest.raises(SpecError, match="cannot read the file"):
        load_finetune(tmp_path / "nothing.yaml")


def test_the_example_fine_tuning_space_is_valid() -> None:
    sp = load_finetune(ROOT / "search_spaces/finetune/fashion_to_digits.yaml")
    ft = sp.finetune
    assert sp.experiment == "ft-fashion-pretrain" and ft.pretrained.sweeps == ("ft_fashion_pretrain",)
    assert ft.experiment == "ft-fashion-digits" and ft.repeat_values() == (1, 4)
    assert ft.repeated_augmentation == 4 and ft.augmentation() == Augment(crop="pad", pad=4, flip=False)


def test_set_overrides_reach_the_finetune_section_checked_against_its_fields(tmp_path: Path) -> None:
    path = tmp_path / "ft.yaml"
    path.write_text(yaml.safe_dump(space()))
    sp = load_finetune(path, ["finetune.epochs=4", "finetune.select.rule=cells", "finetune.select.cells=[nfnet_t0@1]",
                              "finetune.data.image_size=16", "finetune.head.init=timm", "batch_size=32"])
    ft = sp.finetune
    assert (ft.epochs, ft.select.cells, ft.data.image_size, ft.head.init) == (4.0, ("nfnet_t0@1",), 16, "timm")
    assert sp.sweep.batch_size == 32 and ft.batch(sp.sweep) == 32  # a sweep key, checked as the sweep's
    fields = "['data', 'epochs', 'lr', 'pretrained', 'select', 'searcher', 'seeds'"
    bad = [("finetune.epoch=4", f"{path}: finetune.epoch: unknown key; expected one of {fields}"),
           ("finetune.select.rules=cells", f"{path}: finetune.select.rules: unknown key; expected one of ['rule'"),
           ("finetune.lr.base.x=1", f"{path}: finetune.lr.base.x: finetune.lr.base is not a section"),
           ("finetune.seeds=0", f"{path}: finetune.seeds: expected an integer in [1, 100], got 0"),
           ("finetune.searcher=bayes", f"{path}: finetune.searcher: expected one of"),
           ("batch_sise=32", f"{path}: batch_sise: unknown key")]
    for item, message in bad:
        with pytest.raises(SpecError) as err:
            load_finetune(path, [item])
        assert str(err.value).startswith(message), (item, str(err.value))


def test_a_finetune_override_without_a_finetune_section_says_the_section_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "pre.yaml"
    path.write_text(yaml.safe_dump(DEMO))
    with pytest.raises(SpecError, match=rf"{path}: finetune: expected a finetune: section"):
        load_finetune(path, ["finetune.epochs=4"])


def test_raysweep_run_leaves_finetune_overrides_to_the_finetune_section(tmp_path: Path) -> None:
    from raysweep.cli.preflight import load_checked
    from raysweep.config import apply_overrides, load_spec

    path = tmp_path / "ft.yaml"
    path.write_text(yaml.safe_dump(space()))
    assert load_spec(path, ["finetune.epochs=4", "seed=3"]).seed == 3  # the sweep ignores the later stage's key
    assert load_checked(path, ["finetune.epochs=4"]).name == "demo"  # and run's check applies it
    with pytest.raises(SpecError, match=rf"{path}: finetune.epoch: unknown key"):
        load_checked(path, ["finetune.epoch=4"])
    with pytest.raises(SpecError, match="finetune.epochs: expected a key of the sweep, got one of the finetune: "
                                        "section, which `raysweep finetune` reads"):
        apply_overrides({}, ["finetune.epochs=4"], file="f.yaml")  # without the stage's own fields
