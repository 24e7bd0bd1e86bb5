"""The two stages of polarity training as recipes of the training engine
(`cxrkit.fit.engine`): the base stage (polarity and not-a-chest-film on frontal films,
best step on validation) and the view stage (fine-tuned with lateral films and a second
loss on the frontal/lateral head, last weights kept)."""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cxrkit.fit.engine import Plan, Recipe, Validation, fit
from cxrkit.fit.schedule import Schedule
from cxrkit.polarity.net import LATERAL, PolarityNet
from cxrkit.polarity.train_config import PolarityTrainConfig
from cxrkit.polarity.train_data import TrainBatches, TrainingData, val_films
from cxrkit.polarity.train_metrics import choose_thresholds, val_score

log = logging.getLogger("cxrkit.polarity")
VIEW_LOG_EVERY = 50  # view stage: steps between log lines (it does not validate)


class StageRecipe(Recipe):
    """One stage: the endless augmented batches (x, y, view), the class loss plus
    `view_weight` x the view loss, and (base stage) the validation score."""

    score_name = "val score"

    def __init__(
        self,
        net: PolarityNet,
        batches: TrainBatches,
        cfg: PolarityTrainConfig,
        view_weight: float = 0.0,
        val: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> None:
        workers = max(0, cfg.workers - 1)  # one process augments while this one trains
        self.loader = torch.utils.data.DataLoader(
            batches, batch_size=None, num_workers=workers, prefetch_factor=4 if workers else None
        )
        self.module, self.cfg, self.view_weight, self.val = net, cfg, view_weight, val
        self._stream: Iterator[Any] | None = None

    def train_batches(self, round_: int) -> Iterator[Any]:
        """The one endless stream of the stage (every round takes its next steps)."""
        if self._stream is None:
            self._stream = iter(self.loader)
        return self._stream

    def loss(self, module: torch.nn.Module, batch: Any) -> torch.Tensor:
        """`stage_loss` on the net's logits."""
        x, y, v = batch
        logits = module(x.contiguous(memory_format=torch.channels_last))
        return stage_loss(logits, y, v, self.cfg.label_smoothing, self.view_weight)

    def validate(self, module: torch.nn.Module) -> Validation | None:
        """Polarity accuracy + false-alarm and detection terms (`val_score`); none in
        the view stage."""
        if self.val is None:
            return None
        score, detail = val_score(module, *self.val)
        return Validation(score, {"val_score": score}, f"val {detail}")


def stage_loss(
    logits: torch.Tensor,
    y: torch.Tensor,
    v: torch.Tensor,
    label_smoothing: float,
    view_weight: float = 0.0,
) -> torch.Tensor:
    """Class cross-entropy, plus `view_weight` x BCE of the view logit where v >= 0
    (1 = lateral film, 0 = frontal film or, with `view_on_non_films`, a non-film)."""
    loss = F.cross_entropy(logits[:, :LATERAL], y, label_smoothing=label_smoothing)
    judged = v >= 0
    if view_weight and judged.any():
        loss = loss + view_weight * F.binary_cross_entropy_with_logits(
            logits[judged, LATERAL], v[judged]
        )
    return loss


def train_base(
    data: TrainingData, cfg: PolarityTrainConfig, t0: float | None = None
) -> tuple[PolarityNet, dict[str, Any]]:
    """Base stage: polarity + not-a-chest-film on frontal training films (no lateral film,
    no view loss), validated every `eval_every` steps; the rate follows the steps or the
    time left of `max_minutes` since `t0`, whichever runs out first.

    Returns the net (best on validation; a tie goes to the later step) and {step, score}.
    """
    t0 = time.time() if t0 is None else t0
    torch.manual_seed(cfg.seed)
    net = PolarityNet()
    tr = (data.split == "train") & (data.view == "frontal")
    va = (data.split == "val") & (data.view == "frontal")
    batches = TrainBatches(
        data.store[tr], data.plain[tr], data.source[tr], data.others, data.stamps, cfg
    )
    val_x, val_y = val_films(data.plain[va], data.store[va], data.stamps, cfg)
    recipe = StageRecipe(net, batches, cfg, val=(val_x, val_y, data.val_others))
    plan = Plan(
        rounds=math.ceil(cfg.steps / cfg.eval_every),
        schedule=Schedule("cosine", warmup=0.05, floor=0.01),
        total_steps=cfg.steps,
        steps_per_round=cfg.eval_every,
        max_seconds=max(1.0, t0 + cfg.max_minutes * 60 - time.time()),
        ties_improve=True,
    )
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    result = fit(recipe, opt, plan)
    return net.eval(), {"step": result.best_step, "score": result.best_score}


def finetune_view(
    base: PolarityNet,
    data: TrainingData,
    cfg: PolarityTrainConfig,
    holdout: Sequence[str] = (),
) -> PolarityNet:
    """View stage: a copy of `base` fine-tuned on frontal training films, generated
    non-films and the lateral films of `data.lateral_pool(cfg.lateral_parts, holdout)`,
    with the class loss plus `view_weight` x the frontal/lateral loss. Fixed steps, last
    weights kept (no lateral film is left to choose a checkpoint on)."""
    torch.manual_seed(cfg.seed + 1)
    net = copy.deepcopy(base)
    tr = (data.split == "train") & (data.view == "frontal") & ~data.held(holdout)
    lat = data.lateral_pool(cfg.lateral_parts, holdout)
    if not lat.any():
        raise ValueError("the view stage needs lateral films (a labels.csv `view` of L)")
    log.info("view stage: %d lateral films of %d patients", lat.sum(), len(set(data.patient[lat])))
    batches = TrainBatches(
        data.store[tr],
        data.plain[tr],
        data.source[tr],
        data.others,
        data.stamps,
        cfg,
        laterals=(data.store[lat], data.plain[lat]),
        seed_offset=500,
    )
    recipe = StageRecipe(net, batches, cfg, view_weight=cfg.view_weight)
    plan = Plan(
        rounds=math.ceil(cfg.finetune_steps / VIEW_LOG_EVERY),
        schedule=Schedule("cosine", warmup=0.1, floor=0.01),
        total_steps=cfg.finetune_steps,
        steps_per_round=VIEW_LOG_EVERY,
    )
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.finetune_lr, weight_decay=cfg.weight_decay)
    fit(recipe, opt, plan)
    return net.eval()


def fit_view_stage(
    base: PolarityNet,
    data: TrainingData,
    cfg: PolarityTrainConfig,
    holdout: Sequence[str] = (),
) -> tuple[PolarityNet, dict[str, float]]:
    """`finetune_view`, then the thresholds chosen on validation frontal films: the step
    the shipped model and every leave-one-patient-out fold run."""
    net = finetune_view(base, data, cfg, holdout)
    va = (data.split == "val") & (data.view == "frontal")
    varied, _ = val_films(data.plain[va], data.store[va], data.stamps, cfg)
    return net, choose_thresholds(net, data.plain[va], varied, data.val_others)
