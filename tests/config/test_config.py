"""Config validation: every error names the file and the key, and says what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from raysweep.cli.preflight import load_checked
from raysweep.config import load_spec
from raysweep.core.errors import SpecError

BASE = {
    "name": "t",
    "ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t0", "nfnet_t1"]},
    "epochs": [0.25, 1],
    "lr": {"base": 0.4, "factor": 2, "low": 0.1, "high": 0.8},
}


def write(tmp_path: Path, data: object) -> Path:
    p = tmp_path / "space.yaml"
    p.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return p


def test_valid_spec_has_defaults(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, BASE))
    assert spec.epochs == (0.25, 1.0)
    assert spec.lr_grid() == (0.1, 0.2, 0.4, 0.8)
    assert spec.optim.agc_clip == 0.01 and spec.optim.nesterov
    assert spec.data.dataset == "mnist5k"
    with pytest.raises(AttributeError):
        spec.name = "x"  # type: ignore[misc]  # frozen


def test_default_lr_grid_is_the_papers_factor_two_grid() -> None:
    from raysweep.config import LrSpec

    assert LrSpec().grid() == (0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)


def err(tmp_path: Path, data: object, overrides: tuple[str, ...] = ()) -> str:
    path = write(tmp_path, data)
    with pytest.raises(SpecError) as info:
        load_checked(path, overrides)  # the file's checks, then preflight's model checks
    msg = str(info.value)
    assert msg.startswith(str(path)), msg
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize(
    "patch, key, expected",
    [
        ({"bogus": 1}, "bogus", "unknown key"),
        ({"optim": {"momentun": 0.9}}, "optim.momentun", "unknown key"),
        ({"epochs": []}, "epochs", "non-empty list"),
        ({"epochs": [0, 1]}, "epochs[0]", "> 0"),
        ({"epochs": [-1]}, "epochs[0]", "> 0"),
        ({"epochs": [2, 1]}, "epochs", "ascending"),
        ({"epochs": "one"}, "epochs", "expected a list"),
        ({"epochs": ["x"]}, "epochs[0]", "expected a number"),
        ({"lr": {"base": 0}}, "lr.base", "> 0"),
        ({"lr": {"base": -0.1}}, "lr.base", "> 0"),
        ({"lr": {"factor": 1}}, "lr.factor", ">= 1.01"),
        ({"lr": {"base": 5.0}}, "lr.base", "low <= base <= high"),
        ({"ladder": {"family": "resnet_zoo", "rungs": ["a"]}}, "ladder.family", "expected one of"),
        ({"ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_f9"]}}, "ladder.rungs[0]", "expected a rung"),
        ({"ladder": {"family": "nfnet_cpu", "rungs": []}}, "ladder.rungs", "non-empty"),
        ({"ladder": {"family": "nfnet_cpu"}}, "ladder.rungs", "non-empty list of rungs of nfnet_cpu"),
        ({"data": {"dataset": "imagenet22k"}}, "data.dataset", "expected one of"),
        ({"data": {"dataset": "image_folder"}}, "data.path", "folder path"),
        ({"data": {"val_fraction": 1.5}}, "data.val_fraction", "fraction"),
        ({"batch_size": 0}, "batch_size", "> 0"),
        ({"batch_size": 6.5}, "batch_size", "expected an integer"),
        ({"batch_size": True}, "batch_size", "expected an integer"),
        ({"optim": {"nesterov": "yes"}}, "optim.nesterov", "true or false"),
        ({"optim": {"momentum": 1.0}}, "optim.momentum", "[0, 1)"),
        ({"resources": {"device": "tpu7"}}, "resources.device", "expected one of"),
        ({"resources": {"concurrent_trials": 0}}, "resources.concurrent_trials", "> 0"),
        ({"resources": {"device": "cuda"}}, "resources.gpus_per_worker", ">= 1"),
        ({"resources": {"workers_per_trial": 3}}, "batch_size", "multiple"),
        ({"search": {"searcher": "hyperband"}}, "search.searcher", "expected one of"),
        ({"name": "a b"}, "name", "letters"),
        ({"optim": 3}, "optim", "expected a mapping"),
    ],
)
def test_error_names_file_key_and_expectation(tmp_path: Path, patch: dict, key: str, expected: str) -> None:
    data = dict(BASE)
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(data.get(k), dict) and k != "ladder":
            data[k] = {**data[k], **v}
        else:
            data[k] = v
    msg = err(tmp_path, data)
    assert f": {key}: " in msg, msg
    assert expected in msg, msg


def test_missing_name_and_ladder(tmp_path: Path) -> None:
    assert ": name: required key is missing" in err(tmp_path, {k: v for k, v in BASE.items() if k != "name"})


def test_syntax_error_and_top_level(tmp_path: Path) -> None:
    assert "syntax error at line" in err(tmp_path, "name: [unclosed\n")
    assert "mapping at the top level" in err(tmp_path, "- 1\n- 2\n")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read the file"):
        load_spec(tmp_path / "nope.yaml")


def test_overrides_are_validated_like_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    spec = load_spec(path, ["optim.momentum=0.8", "epochs=[0.5, 1, 2]", "search.searcher=grid"])
    assert spec.optim.momentum == 0.8 and spec.epochs == (0.5, 1.0, 2.0) and spec.search.searcher == "grid"
    assert ": optim.momentum: " in err(tmp_path, BASE, ("optim.momentum=2",))
    assert "unknown key" in err(tmp_path, BASE, ("optim.momentun=0.8",))
    assert "KEY=VALUE" in err(tmp_path, BASE, ("optim.momentum",))
    assert "not a section" in err(tmp_path, BASE, ("batch_size.x=1",))
    # a key with a newline or control character (found by the property test) stays one line
    assert ": 0: unknown key" in err(tmp_path, BASE, ("0\n=",))
    assert "'optim.bad\\x1b'" in err(tmp_path, BASE, ("optim.bad\x1b=1",))


def test_repository_search_spaces_are_valid() -> None:
    root = Path(__file__).resolve().parents[2] / "search_spaces"
    files = sorted(root.glob("*.yaml"))
    assert files
    for f in files:
        load_spec(f)


def test_scientific_notation_without_a_dot_is_a_number(tmp_path: Path) -> None:
    path = write(tmp_path, "name: t\nladder: {family: nfnet_cpu, rungs: [nfnet_t0]}\nepochs: [1]\n"
                           "optim: {weight_decay: 1e-5}\nlr: {base: 0.1, low: 1e-3, high: 1}\n")
    spec = load_spec(path, ["optim.label_smoothing=1e-2"])
    assert spec.optim.weight_decay == 1e-5 and spec.lr.low == 1e-3 and spec.optim.label_smoothing == 0.01


@pytest.mark.parametrize(
    "patch, key, expected",
    [
        ({"ladder": {"family": "nfnet_cpu", "rungs": ["nfnet_t2", "nfnet_t0"]}}, "ladder.rungs", "ascending size"),
        ({"lr": {"base": 0.1, "factor": 1.001, "low": 0.001, "high": 10}}, "lr.factor", ">= 1.01"),
        ({"lr": {"base": 0.1, "factor": 1.05, "low": 0.001, "high": 10}}, "lr.factor", "at most 64 grid points"),
        ({"data": {"image_size": 100000}}, "data.image_size", "at most 1024"),
        ({"resources": {"device": "xla", "workers_per_trial": 2}}, "resources.workers_per_trial", "device xla"),
    ],
)
def test_impossible_sweeps_are_rejected(tmp_path: Path, patch: dict, key: str, expected: str) -> None:
    msg = err(tmp_path, {**BASE, **patch})
    assert f": {key}: " in msg and expected in msg, msg


def test_every_searcher_name_the_config_accepts_is_registered() -> None:
    import typing

    from raysweep.config import SearcherName
    from raysweep.search import SEARCHERS

    assert set(typing.get_args(SearcherName)) == set(SEARCHERS)
