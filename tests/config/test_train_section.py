"""The `train` section (torch.compile, bf16 autocast): defaults off, bad values one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from raysweep.config import TrainSpec, load_spec
from raysweep.core.errors import SpecError

BASE = {"name": "t", "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0"]}, "epochs": [1]}


def _load(tmp_path: Path, train: object, overrides: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({**BASE, **({"train": train} if train is not None else {})}))
    return path, load_spec(path, list(overrides))


def test_defaults_are_off(tmp_path: Path) -> None:
    _, spec = _load(tmp_path, None)
    assert spec.train == TrainSpec() and not spec.train.compile and spec.train.precision == "fp32"
    assert spec.to_dict()["train"] == {"compile": False, "precision": "fp32"}  # recorded as MLflow params


def test_valid_values(tmp_path: Path) -> None:
    _, spec = _load(tmp_path, {"compile": True, "precision": "bf16"})
    assert spec.train.compile and spec.train.precision == "bf16"
    _, spec = _load(tmp_path, None, ("train.compile=true", "train.precision=bf16"))
    assert spec.train == TrainSpec(compile=True, precision="bf16")


@pytest.mark.parametrize("train, overrides, key, expected", [
    ({"compile": "yes please"}, (), "train.compile", "expected true or false"),
    ({"compile": 1}, (), "train.compile", "expected true or false"),
    ({"precision": "fp16"}, (), "train.precision", "expected one of ['fp32', 'bf16']"),
    ({"precision": 16}, (), "train.precision", "expected one of"),
    ({"channels_last": True}, (), "train.channels_last", "unknown key"),
    ("fast", (), "train", "expected a mapping"),
    (None, ("train.precision=half",), "train.precision", "expected one of"),
])
def test_bad_values_are_one_line_naming_the_key(tmp_path: Path, train: object, overrides: tuple[str, ...], key: str,
                                                expected: str) -> None:
    with pytest.raises(SpecError) as info:
        _load(tmp_path, train, overrides)
    msg = str(info.value)
    assert "\n" not in msg and f": {key}: " in msg and expected in msg, msg


def test_validate_on_a_built_section() -> None:
    with pytest.raises(SpecError, match="precision"):
        TrainSpec(precision="fp8").validate()  # type: ignore[arg-type]
