"""Average finished lung U-Nets into one model file; its inference is chosen on validation."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cxrkit.data.identity import data_record
from cxrkit.errors import CxrkitError
from cxrkit.models.model_file import find_model_file, provenance
from cxrkit.segment.model import (
    WEIGHT_DTYPES,
    LungEnsemble,
    LungNet,
    file_id,
    load_lung_net,
    save_lung_model,
)
from cxrkit.segment.sets import load_mask_sets, read_set_split, write_set_split
from cxrkit.segment.train import (
    MODEL_NAME,
    SegTrainConfig,
    choice_fields,
    choose_inference,
    headline_metrics,
    score_splits,
)

log = logging.getLogger("cxrkit.segment")


def build_lung_ensemble(
    models: Sequence[str | Path],
    data: Sequence[str | Path],
    split_file: str | Path,
    out_dir: str | Path,
    dtypes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Write `out_dir/model.safetensors`: the members' mean probability as one lung model.

    The members must share an input size. `split_file` is the split they were trained
    on (their `split.csv`); threshold, clean-up and flip-TTA are chosen on its val films,
    and the file is then scored on val and test like `train_lung_model` does. `dtypes`
    stores each member as "float16" (default) or "int8" (see `cxrkit.segment.model`).
    Returns the val and test summaries.
    """
    from cxrkit.guard.view import supported_views
    from cxrkit.logfile import attach_log_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    attach_log_file(out / "ensemble.log")
    files = [find_model_file(m) for m in models]
    dtypes = list(dtypes) if dtypes else ["float16"] * len(files)
    if len(files) < 2 or len(dtypes) != len(files):
        raise CxrkitError(
            f"`models` needs two or more files and `dtypes` one entry each (got {len(files)} "
            f"and {dtypes})"
        )
    if any(d not in WEIGHT_DTYPES for d in dtypes):  # before minutes of inference, not after
        raise CxrkitError(f"`dtypes` {dtypes}: each must be one of {list(WEIGHT_DTYPES)}")
    loaded = [load_lung_net(f) for f in files]
    members = [net for net, _ in loaded if isinstance(net, LungNet)]
    cards = [c for _, c in loaded]
    if len(members) != len(loaded):
        raise CxrkitError("`models`: a member is itself an ensemble; list its members instead")
    sizes = {c.size for c in cards}
    if len(sizes) != 1:
        raise CxrkitError(f"`models` were trained at different input sizes {sorted(sizes)}")
    views = [v for v in supported_views(cards[0]) if all(v in supported_views(c) for c in cards)]

    all_films = load_mask_sets(data)
    splits = read_set_split(split_file, all_films)
    films = {name: [all_films[int(i)] for i in idx] for name, idx in splits.items()}
    pairs = {name: [f.read() for f in films[name]] for name in ("val", "test")}
    val = [(p, f) for p, f in zip(pairs["val"], films["val"], strict=True) if f.view_group in views]
    if not val:
        raise CxrkitError(f"split_file={split_file}: no validation film of views {views}")

    ensemble = LungEnsemble(members).eval()
    probe_cfg = SegTrainConfig(size=sizes.pop())
    choice, candidates = choose_inference(
        ensemble, probe_cfg, [p for p, _ in val], [f.set_name for _, f in val], out
    )
    fields: dict[str, Any] = {
        "task": "segmentation",
        "class_names": ["lungs"],
        "preprocessing": cards[0].to_dict()["preprocessing"],
        **choice_fields(choice),
        "views": views,
        "training": {
            "method": "ensemble: mean probability of the members",
            "data": [data_record(s) for s in data],
            "members": [
                {
                    "sha256_16": file_id(str(f)),
                    "weights_dtype": d,
                    "training": dict(c.provenance.training),
                }
                for f, d, c in zip(files, dtypes, cards, strict=True)
            ],
            "inference_choices_on_val": candidates,
            **provenance(),
        },
    }
    model_file = out / MODEL_NAME
    save_lung_model(model_file, ensemble, fields, dtypes)
    write_set_split(out / "split.csv", all_films, splits)
    results = score_splits(model_file, films, pairs, out)
    fields["metrics"] = {k: headline_metrics(v) for k, v in results.items()}
    save_lung_model(model_file, ensemble, fields, dtypes)
    return results
