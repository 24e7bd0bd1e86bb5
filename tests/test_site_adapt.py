"""`cxr adapt`: AdaBN changes only BatchNorm buffers; EM recovers a known prior shift."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from cxrkit.models.model_file import load_model_file, read_card
from cxrkit.site.adapt import BN_BUFFERS, batchnorm_layers
from cxrkit.site.prior import em_prior, training_prior
from site_helpers import assert_one_line_error, run_cxr, sha256, tensors, tiny_model_file, to_refit


@pytest.fixture(scope="module")
def adapted(site_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny model adapted on kermany_site's films (batches of 20: equal-size batches).

    Its card says `features` mode (a frozen-feature model): plain AdaBN needs --force.
    """
    model = to_refit(tmp_path_factory.mktemp("adapt"))
    code, _, err = run_cxr(
        "adapt", model["src"], "--data", site_dir, "--out", model["out"], "--batch-size", "20",
        "--force",
    )  # fmt: skip
    assert code == 0, err
    return {**model, "err": err, "site": site_dir}


def _is_bn_buffer(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in BN_BUFFERS


def test_adapt_changes_only_batchnorm_buffers(adapted: dict) -> None:
    before, after = tensors(adapted["src"]), tensors(adapted["out"])
    assert before.keys() == after.keys()
    changed = {k for k in before if not before[k].equal(after[k])}
    assert changed and all(_is_bn_buffer(k) for k in changed), changed
    assert any(k.endswith("running_mean") for k in changed)
    assert sha256(adapted["src"]) == adapted["digest"]  # the original file is untouched


def test_first_batchnorm_holds_the_site_mean(adapted: dict) -> None:
    """The first BN's new running mean is the mean of its inputs over the site's films."""
    from cxrkit.site.films import film_loader, unlabelled_site

    model, card = load_model_file(adapted["src"])
    name, bn = next(iter(batchnorm_layers(model).items()))
    seen: list[torch.Tensor] = []
    bn.register_forward_hook(lambda m, inp, out: seen.append(inp[0].mean(dim=(0, 2, 3))))
    site = unlabelled_site(adapted["site"])
    with torch.no_grad():
        for batch in film_loader(site.paths, card, batch_size=20):
            model(batch["image"])
    want = torch.stack(seen).mean(0)
    got = tensors(adapted["out"])[f"{name}.running_mean"]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_the_card_records_the_adaptation(adapted: dict) -> None:
    old, new = read_card(adapted["src"]), read_card(adapted["out"])
    rec = new.provenance.adaptation
    assert rec["bn"] is True and rec["set"] == "kermany_site" and rec["n_films"] == 100
    assert rec["date"] and rec["cxrkit_version"]
    prior = rec["prior"]
    assert prior["train"] == [0.5, 0.5] and "balance: loss" in prior["train_source"]
    assert sum(prior["site"]) == pytest.approx(1.0) and prior["iterations"] >= 1
    assert new.calibration.prior_shift == {"train": prior["train"], "site": prior["site"]}
    assert new.thresholds == old.thresholds
    assert "re-estimated" in adapted["err"] and "EM iterations" in adapted["err"]


def test_labels_are_never_read(adapted: dict, tmp_path: Path) -> None:
    """Scrambled labels give the very same adaptation (the method sees films only)."""
    site = adapted["site"]
    with (site / "labels.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    scrambled = tmp_path / "kermany_site"
    scrambled.mkdir()
    with (scrambled / "labels.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "label"])
        w.writeheader()
        for r in rows:
            w.writerow({"path": str(site / r["path"]), "label": "?"})
    out = tmp_path / "a.safetensors"
    code, _, err = run_cxr(
        "adapt", adapted["src"], "--data", scrambled, "--out", out, "--batch-size", "20", "--force"
    )
    assert code == 0, err
    mine_rec, theirs_rec = (read_card(p).provenance.adaptation for p in (out, adapted["out"]))
    assert mine_rec["prior"] == theirs_rec["prior"]
    mine, theirs = tensors(out), tensors(adapted["out"])
    assert all(mine[k].equal(theirs[k]) for k in mine)


def test_switches(adapted: dict, tmp_path: Path) -> None:
    code, _, err = run_cxr(
        "adapt", adapted["src"], "--data", adapted["site"], "--out", tmp_path / "p.safetensors",
        "--no-bn",
    )  # fmt: skip
    assert code == 0, err
    before, after = tensors(adapted["src"]), tensors(tmp_path / "p.safetensors")
    assert all(before[k].equal(after[k]) for k in before)
    card = read_card(tmp_path / "p.safetensors")
    assert card.provenance.adaptation["bn"] is False and card.calibration.prior_shift
    code, _, err = run_cxr(
        "adapt", adapted["src"], "--data", adapted["site"], "--out", tmp_path / "b.safetensors",
        "--no-prior", "--force",
    )  # fmt: skip
    assert code == 0, err
    card = read_card(tmp_path / "b.safetensors")
    assert card.calibration.prior_shift is None and "prior" not in card.provenance.adaptation


def test_adapt_errors_are_one_line(adapted: dict, tmp_path: Path) -> None:
    src = adapted["src"]
    code, _, err = run_cxr(
        "adapt", src, "--data", tmp_path / "nowhere", "--out", tmp_path / "o.safetensors"
    )
    assert_one_line_error(code, err, "nowhere")
    code, _, err = run_cxr(
        "adapt", src, "--data", adapted["site"], "--out", tmp_path / "o.safetensors",
        "--no-bn", "--no-prior",
    )  # fmt: skip
    assert_one_line_error(code, err, "nothing to adapt")
    code, _, err = run_cxr("adapt", src, "--data", adapted["site"], "--out", tmp_path / "o.txt")
    assert_one_line_error(code, err, ".safetensors")
    calibrated = tiny_model_file(tmp_path / "c.safetensors", site_calibration={"set": "x"})
    code, _, err = run_cxr(
        "adapt", calibrated, "--data", adapted["site"], "--out", tmp_path / "o.safetensors"
    )
    assert_one_line_error(code, err, "site calibration")
    # a calibrate run that kept the model changed nothing: adapting it is allowed
    checked = tiny_model_file(
        tmp_path / "k.safetensors", site_calibration={"set": "x", "changed": False}
    )
    out = tmp_path / "k-adapted.safetensors"
    code, _, err = run_cxr("adapt", checked, "--data", adapted["site"], "--out", out, "--no-bn")
    assert code == 0, err
    card = read_card(out)
    assert card.provenance.site_calibration is None
    assert card.provenance.adaptation["earlier_site_check"] == {"set": "x", "changed": False}


def test_plain_adabn_on_a_frozen_feature_model_is_refused(adapted: dict, tmp_path: Path) -> None:
    """No --reference, no --force: one line saying why and what to give; nothing written."""
    out = tmp_path / "o.safetensors"
    code, _, err = run_cxr("adapt", adapted["src"], "--data", adapted["site"], "--out", out)
    assert_one_line_error(
        code, err, "frozen features", "ImageNet", "--reference", "--no-bn", "--force"
    )
    assert not out.exists()


def test_the_library_refusal_names_arguments(adapted: dict, tmp_path: Path) -> None:
    from cxrkit.errors import CxrkitError
    from cxrkit.site import adapt_model

    out = tmp_path / "o.safetensors"
    with pytest.raises(CxrkitError) as exc:
        adapt_model(adapted["src"], adapted["site"], out)
    message = str(exc.value)
    assert "reference=" in message and "force=True" in message and "--" not in message
    assert not out.exists()
    # force=True adapts it anyway: plain AdaBN, the risk on record
    report = adapt_model(adapted["src"], adapted["site"], out, force=True, prior=False)
    rec = report["adaptation"]
    assert rec["bn_mode"] == "site statistics" and rec["forced"] is True
    assert any("force=True" in w and "reference=" in w for w in rec["warnings"])
    assert read_card(out).provenance.adaptation["forced"] is True


def test_forced_adaptation_warns_in_flags(adapted: dict) -> None:
    """The --force run (the fixture) wrote the model and printed the warning as flags."""
    assert adapted["out"].exists()
    warning = next(line for line in adapted["err"].splitlines() if "warning:" in line)
    assert "--force" in warning and "--reference" in warning and "force=True" not in warning


def test_a_finetuned_model_is_adapted_without_force(adapted: dict, tmp_path: Path) -> None:
    """A model whose backbone was trained (finetune mode) has its own BN statistics: no refusal."""
    src = tiny_model_file(
        tmp_path / "ft.safetensors", training={"mode": "finetune", "config": {"balance": "loss"}}
    )
    out = tmp_path / "ft-adapted.safetensors"
    code, _, err = run_cxr(
        "adapt", src, "--data", adapted["site"], "--out", out, "--batch-size", "20", "--no-prior"
    )
    assert code == 0, err
    rec = read_card(out).provenance.adaptation
    assert rec["bn_mode"] == "site statistics" and "forced" not in rec
    assert rec["warnings"] == [] and "warning" not in err


def _posteriors(x: np.ndarray, means: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Exact posteriors of unit-variance 1-D Gaussian classes under `prior`."""
    lik = np.exp(-0.5 * (x[:, None] - means[None, :]) ** 2)
    joint = lik * prior[None, :]
    return joint / joint.sum(1, keepdims=True)


@pytest.mark.parametrize(
    "train,site",
    [([0.5, 0.5], [0.2, 0.8]), ([0.26, 0.74], [0.62, 0.38]), ([0.3, 0.3, 0.4], [0.6, 0.1, 0.3])],
)
def test_em_recovers_a_known_prior_shift(train: list[float], site: list[float]) -> None:
    rng = np.random.default_rng(0)
    means = np.arange(len(train)) * 2.0
    labels = rng.choice(len(site), size=20000, p=site)
    x = rng.normal(means[labels], 1.0)
    est = em_prior(_posteriors(x, means, np.asarray(train)), np.asarray(train))
    assert est.converged
    np.testing.assert_allclose(est.site, np.bincount(labels) / len(labels), atol=0.02)


def test_training_prior_rules() -> None:
    names = {"task": "binary", "class_names": ["a", "b"], "preprocessing": {"size": 32}}
    stored = {**names, "training_prior": {"prior": [1, 3], "source": "counted"}}
    assert training_prior(stored)[0].tolist() == [0.25, 0.75]
    balanced = {
        **names,
        "training": {"config": {"balance": "loss"}, "class_counts": {"a": 1, "b": 3}},
    }
    assert training_prior(balanced)[0].tolist() == [0.5, 0.5]
    counted = {
        **names,
        "training": {"config": {"balance": "none"}, "class_counts": {"a": 1, "b": 3}},
    }
    prior, note = training_prior(counted)
    assert prior.tolist() == [0.25, 0.75] and "counts" in note
    prior, note = training_prior(names)
    assert prior.tolist() == [0.5, 0.5] and "no training class prior" in note


def test_relative_adabn_with_the_site_as_reference_keeps_the_first_layer(
    adapted: dict, tmp_path: Path
) -> None:
    """Reference films = site films: the first BN (whose input no BN shapes) keeps its stats."""
    out = tmp_path / "rel.safetensors"
    code, _, err = run_cxr(
        "adapt", adapted["src"], "--data", adapted["site"], "--out", out,
        "--reference", adapted["site"], "--no-prior", "--batch-size", "20",
    )  # fmt: skip
    assert code == 0, err
    before, after = tensors(adapted["src"]), tensors(out)
    changed = {k for k in before if not before[k].equal(after[k])}
    assert all(_is_bn_buffer(k) for k in changed), changed
    model, _ = load_model_file(adapted["src"])
    first = next(iter(batchnorm_layers(model)))
    for buf in ("running_mean", "running_var"):
        key = f"{first}.{buf}"
        torch.testing.assert_close(after[key], before[key], atol=1e-4, rtol=1e-3)
    rec = read_card(out).provenance.adaptation
    assert rec["bn_mode"] == "relative" and rec["reference"]["n_films"] == 100
    assert rec["reference"]["set"] == "kermany_site"
