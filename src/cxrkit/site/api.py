"""`calibrate_model` and `adapt_model`: read a model file and a site, write a new model file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cxrkit.data.selection import add_selection_set
from cxrkit.errors import CxrkitError
from cxrkit.models.model_file import find_model_file, load_model_file, provenance
from cxrkit.site.calibrate import card_decisions, card_threshold, check_methods, site_decision
from cxrkit.site.crossval import DEFAULT_CI_WIDTH, cross_validated, site_figures, size_warnings
from cxrkit.site.films import film_loader, labelled_site, network_probabilities, unlabelled_site
from cxrkit.site.guard import guarded_fit
from cxrkit.site.model_copy import check_out_path, write_model_copy
from cxrkit.site.resample import DEFAULT_RESAMPLES


def _stamp() -> dict[str, str]:
    """Date and cxrkit version for a card record."""
    prov = provenance()
    return {"date": prov["date"], "cxrkit_version": prov["versions"]["cxrkit"]}


def calibrate_model(
    model_path: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    method: str = "youden",
    probabilities: str = "temperature",
    folds: int = 5,
    resamples: int = DEFAULT_RESAMPLES,
    group_by_file: bool = False,
    n_bootstrap: int = 1000,
    ci_width: float = DEFAULT_CI_WIDTH,
    batch_size: int = 32,
    num_workers: int = 0,
    seed: int = 0,
    model_name: str | None = None,
    model_version: str | None = None,
) -> dict[str, Any]:
    """Fit threshold and probability calibration on a labelled site set; write a new model file.

    The fitted change is written only when it earns it (`cxrkit.site.resample`): over
    `resamples` random patient halves of the site (fit on one, score the other) the mean
    gain in what `method` optimises must exceed its resampled standard deviation
    (`sensitivity:X` is a constraint and always applied). Otherwise the new file keeps the
    model's threshold (and its map, unless a monotone map lowers the held-out ECE reliably)
    and its record says so. Patients come from the set's `patient_id` column; a set without
    one is refused unless `group_by_file` (each film its own patient) says so on purpose.

    Returns a report: the site, the decision and its resampled evidence, the fitted
    threshold and calibration, cross-validated figures before (the model as given) and
    after (the fitted change, fitted on the other folds: they complement the resamples
    with whole-set out-of-fold figures and CIs), warnings.
    The new card's `name` / `version` (DICOM reports) are `model_name` / `model_version`,
    else the source card's, else the output folder's name and the cxrkit version.
    """
    check_methods(method, probabilities)
    source = find_model_file(model_path)
    dst = check_out_path(source, out)
    model, card = load_model_file(source)
    if card.task != "binary":
        raise CxrkitError(f"cxr calibrate supports binary models; this one is {card.task}")
    site = labelled_site(data, card)
    if not (site.patient_ids_given or group_by_file):
        raise CxrkitError(
            f"{site.name}: no patient_id for every film, so resampling cannot keep a patient's "
            "films on one side; add a patient_id column, or pass group_by_file=True to treat "
            "each film as its own patient"
        )
    probs_raw, got = network_probabilities(
        model, card, film_loader(site.paths, card, batch_size, num_workers)
    )
    assert site.y is not None and site.groups is not None
    y, groups = site.y[got], site.groups[got]
    names = list(card.class_names)
    counts = {name: int(np.sum(y == i)) for i, name in enumerate(names)}
    if min(counts.values()) == 0:
        raise CxrkitError(f"{site.name}: the site set needs films of both classes, has {counts}")

    before = site_figures(y, *card_decisions(probs_raw, card), names, n_bootstrap, seed)
    oof_probs, oof_pred, fold_t = cross_validated(
        y, probs_raw, groups, card, method, probabilities, folds, seed
    )
    after = site_figures(y, oof_probs, oof_pred, names, n_bootstrap, seed)
    warnings = size_warnings(counts, after, ci_width)
    fit = guarded_fit(y, probs_raw, groups, card, method, probabilities, resamples, seed)
    cal = fit.fitted_calibration
    if cal["method"] == "platt" and cal["params"]["a"] <= 0:
        warnings.append(
            f"the fitted Platt slope is {cal['params']['a']:.3g} (<= 0): the model does not rank "
            "this site's films the right way round; check the site set and the model"
        )

    record: dict[str, Any] = {
        "set": site.name,
        "n_films": int(len(y)),
        "unreadable_films": int(len(site.paths) - len(got)),
        "class_counts": counts,
        "labels_sha256": site.labels_sha256,
        "method": method,
        "probabilities": probabilities,
        "decision": fit.decision,
        "changed": fit.changed,
        "threshold": fit.threshold,
        "model_threshold": card_threshold(card),
        "fitted_threshold": fit.fitted_threshold,
        "fitted_probability_calibration": fit.fitted_calibration,
        "resampled": fit.resampled,
        "group_by_file": bool(group_by_file and not site.patient_ids_given),
        "folds": folds,
        "fold_thresholds": fold_t,
        **_stamp(),
        "cross_validated": {"before": before, "after": after},
        "warnings": warnings,
    }
    if card.calibration.prior_shift and fit.changed:
        record["replaced_prior_shift"] = dict(card.calibration.prior_shift)
    trained = card.provenance.training_thresholds  # kept from an earlier site calibration
    fields: dict[str, Any] = {
        "training_thresholds": list(card.thresholds if trained is None else trained),
        "site_calibration": record,
        "name": model_name or card.name or Path(dst).resolve().parent.name,
        "version": model_version or card.version or _stamp()["cxrkit_version"],
    }
    if fit.changed:  # the site map replaces the card's maps (labels replace a prior shift)
        fields.update(
            probability_calibration=fit.calibration,
            prior_shift=None,
            thresholds=list(site_decision(card, fit.threshold).thresholds),
        )
    if fit.decision == "threshold":
        used = "site threshold" if fit.calibration["method"] == "none" else "site threshold, map"
        fields["selection_sets"] = add_selection_set(
            card.provenance.selection_sets, site.name, site.labels_sha256, [used]
        )
    new = card.merged(**fields)
    write_model_copy(source, dst, new)
    return {
        "out": str(dst),
        "site_calibration": record,
        "probability_calibration": dict(new.calibration.probability or {"method": "none"}),
    }


def adapt_model(
    model_path: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    bn: bool = True,
    prior: bool = True,
    reference: str | Path | None = None,
    max_reference: int = 300,
    force: bool = False,
    batch_size: int = 32,
    num_workers: int = 0,
) -> dict[str, Any]:
    """AdaBN and/or EM class prior on a site's films (labels never read); write a new model file.

    With `reference` (films of the training domain, labels never read; at most
    `max_reference`, drawn seeded), AdaBN is relative: BN statistics that were never the
    training films' (a frozen ImageNet backbone) are moved so that site activations match
    the reference films' moments, instead of being replaced by the site's own.

    Plain AdaBN (`bn` without `reference`) on a frozen-feature model (trained in `features`
    mode: cached CNN codes + head) is refused unless `force`: it replaces the ImageNet
    statistics its head learnt under (measured on kermany_site: AUC 0.99 -> 0.65).
    """
    from cxrkit.site.adapt import (
        adapt_batchnorm,
        adapt_batchnorm_relative,
        batchnorm_input_moments,
        batchnorm_state,
    )
    from cxrkit.site.prior import em_prior, training_prior

    if not (bn or prior):
        raise CxrkitError(
            "nothing to adapt: bn=False and prior=False together leave the model as is"
        )
    source = find_model_file(model_path)
    dst = check_out_path(source, out)
    model, card = load_model_file(source)
    earlier_check = card.provenance.site_calibration
    if earlier_check and earlier_check.get("changed", True):
        raise CxrkitError(
            f"{source} already carries a site calibration (fitted before adaptation); "
            "adapt the uncalibrated model, then run cxr calibrate on the adapted one"
        )
    site = unlabelled_site(data)
    frozen = card.provenance.training.get("mode") == "features"
    if bn and reference is None and frozen and not force:
        raise CxrkitError(
            f"{source} was trained on frozen features (cached CNN codes + head): its "
            "BatchNorm statistics are ImageNet's, not the training films', and plain AdaBN "
            "replaces the statistics its head learnt under (measured on kermany_site: AUC "
            "0.99 -> 0.65). Give reference=TRAINING_FILMS for relative AdaBN, bn=False to "
            "adapt the class prior only, or force=True to adapt anyway"
        )
    replace: dict[str, Any] = {}
    n_films = len(site.paths)
    warnings: list[str] = []
    record: dict[str, Any] = {"bn": bn, "set": site.name}
    if bn and reference is not None:
        ref = unlabelled_site(reference)
        paths = ref.paths
        if len(paths) > max_reference:
            pick = np.random.default_rng(0).choice(len(paths), max_reference, replace=False)
            paths = [paths[i] for i in sorted(pick)]
        moments = batchnorm_input_moments(model, film_loader(paths, card, batch_size, num_workers))
        n_films = adapt_batchnorm_relative(
            model, film_loader(site.paths, card, batch_size, num_workers), moments
        )
        record.update(bn_mode="relative", reference={"set": ref.name, "n_films": len(paths)})
    elif bn:
        n_films = adapt_batchnorm(model, film_loader(site.paths, card, batch_size, num_workers))
        record["bn_mode"] = "site statistics"
        if frozen:  # force=True: adapted as asked, the risk kept on record
            record["forced"] = True
            warnings.append(
                "this model was trained on a frozen backbone whose BatchNorm statistics are "
                "ImageNet's, not the training films'; plain AdaBN (force=True) changes the "
                "features its head learnt from (measured on kermany_site: AUC 0.99 -> 0.65). "
                "reference=TRAINING_FILMS gives relative AdaBN instead"
            )
    if bn:
        replace = batchnorm_state(model)
    fields: dict[str, Any] = {}
    if earlier_check:  # a calibrate run that kept the model: it described the unadapted one
        record["earlier_site_check"] = dict(earlier_check)
        fields["site_calibration"] = None
    record.update(n_films=int(n_films), **_stamp())
    if prior and card.task == "multilabel":
        record["prior"] = {"skipped": "a multilabel model has no single class prior"}
    elif prior:
        probs, got = network_probabilities(
            model, card, film_loader(site.paths, card, batch_size, num_workers)
        )
        train, source_note = training_prior(card)
        est = em_prior(probs, train)
        fields["training_prior"] = {"prior": [float(v) for v in train], "source": source_note}
        fields["prior_shift"] = {
            "train": [float(v) for v in train],
            "site": [float(v) for v in est.site],
        }
        record["n_films"] = int(len(got))
        record["prior"] = {
            "train": [float(v) for v in train],
            "train_source": source_note,
            "site": [float(v) for v in est.site],
            "iterations": est.iterations,
            "converged": est.converged,
        }
    else:
        fields["prior_shift"] = None
    record["warnings"] = warnings
    fields["adaptation"] = record
    write_model_copy(source, dst, card.merged(**fields), replace=replace)
    return {"out": str(dst), "adaptation": record}
