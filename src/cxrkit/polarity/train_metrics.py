"""Scoring a polarity net during and after training: the validation score that picks the
base stage's checkpoint, the operating points chosen on validation, the test metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cxrkit.polarity.augment import film_batch
from cxrkit.polarity.model import logits_to_probs
from cxrkit.polarity.net import LATERAL, NEGATIVE, NOT_CXR, POSITIVE
from cxrkit.polarity.synth import make_examples
from cxrkit.polarity.train_config import PolarityTrainConfig
from cxrkit.polarity.train_data import TrainingData, both_polarities


@torch.inference_mode()
def net_probs(net: torch.nn.Module, x: np.ndarray | torch.Tensor) -> np.ndarray:
    """(N, 4) probabilities (class softmax, p(lateral)) of an unfused net; uint8 or [0, 1]."""
    net.eval()
    t = torch.as_tensor(x).float()
    if t.max() > 1.5:
        t = t / 255.0
    t = t.unsqueeze(1) if t.ndim == 3 else t
    return torch.cat([logits_to_probs(net(c)) for c in t.split(512)]).numpy()


def val_score(
    net: torch.nn.Module, x: np.ndarray, y: np.ndarray, others: np.ndarray
) -> tuple[float, str]:
    """Polarity accuracy + half of (1 - false alarms) + half of detection, on validation."""
    p = net_probs(net, x)
    pol_acc = float((_polarity(p) == y).mean())
    false_alarm = float((p[:, NOT_CXR] >= 0.5).mean())
    detect = float((net_probs(net, others)[:, NOT_CXR] >= 0.5).mean())
    score = pol_acc + 0.5 * (1 - false_alarm) + 0.5 * detect
    return score, f"polarity {pol_acc:.4f} false-alarm {false_alarm:.4f} detect {detect:.4f}"


def choose_thresholds(
    net: torch.nn.Module, films: np.ndarray, varied: np.ndarray, others: np.ndarray
) -> dict:
    """From validation: not_cxr at 0.5, raised when needed so <= 0.5% of films (as read and
    inverted) are flagged; lateral 0.02 above every frontal film (as read, inverted and
    varied) and above 99% of the non-films, at least 0.5, at most 0.95."""
    x, _ = both_polarities(films)
    p = net_probs(net, x)
    t = max(0.5, float(np.quantile(p[:, NOT_CXR], 0.995)) + 1e-4)
    t = min(t, 0.95)
    frontal = max(
        float(p[:, LATERAL].max(initial=0.0)),
        float(net_probs(net, varied)[:, LATERAL].max(initial=0.0)),
    )
    other = float(np.quantile(net_probs(net, others)[:, LATERAL], 0.99)) if len(others) else 0.0
    t_lat = min(max(0.5, frontal + 0.02, other + 0.02), 0.95)
    return {"not_cxr": round(t, 4), "fix": 0.9, "lateral": round(t_lat, 4)}


def _rate(flags: np.ndarray) -> dict[str, Any]:
    return {"n": int(len(flags)), "rate": float(flags.mean()) if len(flags) else float("nan")}


def score_test_split(
    net: torch.nn.Module, data: TrainingData, thresholds: dict, cfg: PolarityTrainConfig
) -> dict[str, Any]:
    """On the test split, per source: polarity accuracy (films as read and inverted, plain
    and with one random variation), guard false alarms, lateral false alarms on frontal
    films; lateral detection on test lateral films; detection of held-out non-films."""
    t_nc, t_lat = thresholds["not_cxr"], thresholds["lateral"]
    test = data.split == "test"
    keys = ("polarity", "polarity_varied", "guard_false_alarm", "guard_false_alarm_varied")
    out: dict[str, Any] = {k: {} for k in (*keys, "view_false_alarm", "view_false_alarm_varied")}
    gen = torch.Generator().manual_seed(cfg.seed + 7)
    pooled: dict[str, list[np.ndarray]] = {k: [] for k in out}
    for src in sorted(set(data.source[test])):
        mask = test & (data.source == src)
        frontal = np.tile(data.view[mask] == "frontal", 2)
        x, y = both_polarities(data.plain[mask])
        p = net_probs(net, x)
        films = torch.from_numpy(data.store[mask]).float().div(255).unsqueeze(1)
        xv, yv = film_batch(films, data.stamps, cfg.input_size, gen)
        pv = net_probs(net, xv)
        frontal_v = data.view[mask] == "frontal"
        flags = {
            "polarity": _polarity(p) == y,
            "polarity_varied": _polarity(pv) == yv.numpy(),
            "guard_false_alarm": _flagged(p, t_nc, t_lat),
            "guard_false_alarm_varied": _flagged(pv, t_nc, t_lat),
            "view_false_alarm": p[frontal, LATERAL] >= t_lat,
            "view_false_alarm_varied": pv[frontal_v, LATERAL] >= t_lat,
        }
        for k, f in flags.items():
            pooled[k].append(f)
            out[k][src] = _rate(f)
    for k in out:
        out[k]["all"] = _rate(np.concatenate(pooled[k]))
    for k in ("polarity", "polarity_varied"):  # accuracy, as the card always said
        out[k] = {s: {"n": v["n"], "accuracy": v["rate"]} for s, v in out[k].items()}
    lat = test & (data.view == "lateral")
    if lat.any():
        x, _ = both_polarities(data.plain[lat])
        p = net_probs(net, x)
        out["lateral_detection"] = {
            "as_read": _rate(p[: lat.sum(), LATERAL] >= t_lat),
            "inverted": _rate(p[lat.sum() :, LATERAL] >= t_lat),
            "called_not_cxr": _rate(_flagged(p, t_nc, t_lat)),
        }
    held, kinds = make_examples(
        "test",
        cfg.test_others_per_kind,
        cfg.seed + 2000,
        cfg.input_size,
        films=data.store[test & (data.view == "frontal")],
    )
    ph = net_probs(net, held)
    flagged = _flagged(ph, t_nc, t_lat)
    kinds_arr = np.array(kinds)
    out["guard_detection"] = {k: _rate(flagged[kinds_arr == k]) for k in sorted(set(kinds))}
    out["guard_detection"]["all"] = _rate(flagged)
    out["non_films_called_lateral"] = _rate(ph[:, LATERAL] >= t_lat)
    return out


def _flagged(p: np.ndarray, t_nc: float, t_lat: float) -> np.ndarray:
    """The guard's verdict (as `flags_not_cxr`): the class head's not_cxr. (`t_lat` is
    unused: a lateral call does not overrule it, the view head fires on CT slices.)"""
    del t_lat
    return p[:, NOT_CXR] >= t_nc


def _polarity(p: np.ndarray) -> np.ndarray:
    return np.where(p[:, NEGATIVE] > p[:, POSITIVE], NEGATIVE, POSITIVE)
