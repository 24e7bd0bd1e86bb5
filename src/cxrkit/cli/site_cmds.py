"""`cxr calibrate` and `cxr adapt`: fit a model to a new site, writing a new model file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape

from cxrkit.cli.flags import as_flags

console = Console(stderr=True)

ModelArg = Annotated[Path, typer.Argument(help="model file or run directory")]
OutOpt = Annotated[Path, typer.Option(help="NEW model file (.safetensors); the original stays")]
BatchOpt = Annotated[int, typer.Option(min=1)]
WorkersOpt = Annotated[int, typer.Option(min=0)]


def register(app: typer.Typer) -> None:
    """Attach the site verbs to the top-level app."""
    app.command("calibrate")(calibrate_cmd)
    app.command("adapt")(adapt_cmd)


def calibrate_cmd(
    model: ModelArg,
    data: Annotated[Path, typer.Option(help="the site's labelled films (labels.csv or folder)")],
    out: OutOpt,
    method: Annotated[
        str,
        typer.Option(help="threshold: youden | sensitivity:0.95 | cost:RATIO (miss/false alarm)"),
    ] = "youden",
    probabilities: Annotated[
        str, typer.Option(help="probability calibration: temperature | platt | isotonic | none")
    ] = "temperature",
    folds: Annotated[
        int, typer.Option(min=2, help="cross-validation folds for the printed figures")
    ] = 5,
    resamples: Annotated[
        int,
        typer.Option(
            min=1,
            help="random patient halves (fit on one, score the other) that decide whether "
            "the fitted change is written",
        ),
    ] = 200,
    group_by_file: Annotated[
        bool,
        typer.Option(
            "--group-by-file",
            help="the set has no patient_id: treat each film as its own patient",
        ),
    ] = False,
    n_bootstrap: Annotated[int, typer.Option(min=0, help="bootstrap resamples for the CIs")] = 1000,
    ci_width: Annotated[
        float, typer.Option(help="warn when the accuracy CI is wider than +/- this")
    ] = 0.05,
    batch_size: BatchOpt = 32,
    num_workers: WorkersOpt = 0,
    json_out: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    model_name: Annotated[
        str | None, typer.Option(help="the new card's name (default: the source's)")
    ] = None,
    model_version: Annotated[
        str | None, typer.Option(help="the new card's version (default: the source's)")
    ] = None,
) -> None:
    """Refit threshold and probability calibration on a labelled site set into a new model file."""
    report = _run_site_verb(
        "calibrate_model",
        "site_calibration",
        json_out,
        model,
        data,
        out,
        method=method,
        probabilities=probabilities,
        folds=folds,
        resamples=resamples,
        group_by_file=group_by_file,
        n_bootstrap=n_bootstrap,
        ci_width=ci_width,
        batch_size=batch_size,
        num_workers=num_workers,
        model_name=model_name,
        model_version=model_version,
    )
    if report is None:
        return
    rec = report["site_calibration"]
    cv = rec["cross_validated"]
    console.print(
        f"site {rec['set']}: {rec['n_films']} films {rec['class_counts']}; fitted threshold "
        f"{rec['method']} -> {rec['fitted_threshold']:.4f}, probabilities {rec['probabilities']}; "
        f"figures cross-validated over {rec['folds']} patient-grouped folds",
        highlight=False,
    )
    console.print(_table(cv["before"], cv["after"]), highlight=False)
    for line in guard_lines(rec):
        console.print(line, highlight=False)
    console.print(f"wrote {report['out']}", highlight=False)


def guard_lines(rec: dict[str, Any]) -> list[str]:
    """The resampled gain with its interval, P(hurt) and what the new file holds."""
    res = rec["resampled"]
    gain, acc = res["gain"], res["accuracy_change"]
    lo, hi = gain["interval"]
    width = res["interval_percentiles"][1] - res["interval_percentiles"][0]
    lines = [
        f"resampled over {res['resamples']} patient-grouped halves (fit on "
        f"{res['films_fitted_per_resample']} films, scored on the rest): change in "
        f"{res['objective']} {gain['mean']:+.3f} (sd {gain['sd']:.3f}; {width:.0f} % interval "
        f"{lo:+.3f} to {hi:+.3f}), P(hurt) {res['probability_hurt']:.2f}; accuracy "
        f"{acc['mean']:+.3f} ({acc['interval'][0]:+.3f} to {acc['interval'][1]:+.3f}). "
        "Rule: write the change when the mean gain exceeds its sd"
    ]
    sens = res["held_out_sensitivity"]
    if rec["method"].startswith("sensitivity"):
        lines.append(
            f"held-out sensitivity of the fitted threshold: {sens['mean']:.3f} "
            f"({sens['interval'][0]:.3f} to {sens['interval'][1]:.3f})"
        )
    n = rec["n_films"]
    old, new = rec["model_threshold"], rec["threshold"]
    if rec["decision"] == "threshold":
        why = (
            "a constraint asked for: applied"
            if rec["method"].startswith("sensitivity")
            else f"gain beyond noise ({gain['mean']:+.3f} > sd {gain['sd']:.3f})"
        )
        lines.append(
            f"{why}: threshold {old:.4f} -> {new:.4f}, map {rec['probabilities']}: "
            "CHANGED the model"
        )
    elif rec["decision"] == "probabilities":
        lines.append(
            f"no measurable gain on {n} films: decisions kept (threshold {old:.4f} carried "
            f"through the new {rec['probabilities']} map as {new:.4f}, which lowers the ECE)"
        )
    else:
        lines.append(
            f"no measurable gain on {n} films: threshold kept ({old:.4f}); the model's "
            "decisions and probabilities are unchanged"
        )
    return lines


def adapt_cmd(
    model: ModelArg,
    data: Annotated[
        Path, typer.Option(help="the site's films: a folder, or a labels.csv (labels ignored)")
    ],
    out: OutOpt,
    no_bn: Annotated[bool, typer.Option("--no-bn", help="keep the BatchNorm statistics")] = False,
    reference: Annotated[
        Path | None,
        typer.Option(help="training-domain films (labels ignored): relative AdaBN"),
    ] = None,
    max_reference: Annotated[int, typer.Option(min=1, help="reference films used at most")] = 300,
    force: Annotated[
        bool,
        typer.Option("--force", help="plain AdaBN even on a frozen-feature model (codes + head)"),
    ] = False,
    no_prior: Annotated[
        bool, typer.Option("--no-prior", help="no class-prior re-estimate")
    ] = False,
    batch_size: BatchOpt = 32,
    num_workers: WorkersOpt = 0,
    json_out: Annotated[bool, typer.Option("--json", help="print the record as JSON")] = False,
) -> None:
    """Adapt a model to a site without labels (AdaBN, EM class prior) into a new model file."""
    report = _run_site_verb(
        "adapt_model",
        "adaptation",
        json_out,
        model,
        data,
        out,
        bn=not no_bn,
        prior=not no_prior,
        reference=reference,
        max_reference=max_reference,
        force=force,
        batch_size=batch_size,
        num_workers=num_workers,
    )
    if report is None:
        return
    rec = report["adaptation"]
    console.print(
        f"site {rec['set']}: {rec['n_films']} films; BatchNorm statistics"
        + (f" re-estimated ({rec['bn_mode']})" if rec["bn"] else " kept"),
        highlight=False,
    )
    prior = rec.get("prior")
    if prior and "site" in prior:
        console.print(
            f"class prior: training {_fmt(prior['train'])} ({prior['train_source']}) -> site "
            f"{_fmt(prior['site'])} after {prior['iterations']} EM iterations",
            highlight=False,
        )
    elif prior:
        console.print(f"class prior: {prior['skipped']}", highlight=False)
    console.print(f"wrote {report['out']}", highlight=False)


def _run_site_verb(
    function: Literal["calibrate_model", "adapt_model"],
    record: str,
    json_out: bool,
    *args: Any,
    **kwargs: Any,
) -> dict[str, Any] | None:
    """Run `cxrkit.site.<function>` and print its record's warnings; None once --json printed it.

    The function is named, not passed, so that torch loads only after the OpenMP setting.
    """
    from cxrkit.cli.threads import passive_openmp_waits

    passive_openmp_waits()  # before torch loads
    import cxrkit.site

    report: dict[str, Any] = getattr(cxrkit.site, function)(*args, **kwargs)
    for w in report[record]["warnings"]:
        console.print(f"[yellow]warning:[/] {escape(as_flags(w))}", highlight=False, soft_wrap=True)
    if json_out:
        typer.echo(json.dumps(report, indent=2))
        return None
    return report


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in values) + "]"


def _cell(fig: dict[str, Any], key: str) -> str:
    value, ci = fig.get(key), fig.get(f"{key}_ci")
    if value is None:
        return "n/a"
    return f"{value:.3f}" + (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else "")


def _table(before: dict[str, Any], after: dict[str, Any]) -> str:
    rows = [("", "before (model as given)", "after (fitted change, cross-validated)")]
    for key in ("auc", "accuracy", "sensitivity", "specificity", "ece"):
        rows.append((key, _cell(before, key), _cell(after, key)))
    rows.append(
        (
            "positive rate",
            f"{before['predicted_positive_rate']:.3f} (true {before['true_positive_rate']:.3f})",
            f"{after['predicted_positive_rate']:.3f} (true {after['true_positive_rate']:.3f})",
        )
    )
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
