"""Options of a polarity training run (`train_polarity`), saved into the model card."""

from __future__ import annotations

from dataclasses import dataclass

from cxrkit.polarity.films import LUNG_SPLIT_SOURCES


@dataclass
class PolarityTrainConfig:
    """Options of a polarity training run (saved into the model card)."""

    input_size: int = 64
    store_size: int = 128  # films are kept at this size for crop augmentation
    steps: int = 1600
    batch_size: int = 256
    other_fraction: float = 0.3  # share of each batch that is generated non-film images
    fragment_fraction: float = 0.25  # share of those that are small pieces of training films
    lr: float = 3e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.02
    eval_every: int = 200
    others_per_kind: int = 500
    test_others_per_kind: int = 150  # held-out generators, for the reported detection rate
    seed: int = 0
    workers: int = 2
    threads: int = 1  # per process; 2 OpenMP threads crawl on a busy 2-core box
    # the learning-rate schedule follows the steps or the time, whichever runs out first
    max_minutes: float = 9.0
    # view stage: fine-tune with lateral films (of patients in `lateral_parts`)
    finetune_steps: int = 300
    finetune_lr: float = 1e-3
    lateral_fraction: float = 0.2  # share of a batch's films that are lateral films
    view_weight: float = 1.0  # weight of the frontal/lateral loss beside the class loss
    # False: the view head learns on films only. True was tried: held-out laterals with
    # black margins and burned-in text then looked like non-films to it (1 of 4 detected)
    view_on_non_films: bool = False
    lateral_parts: tuple[str, ...] = ("train", "val")
    lung_split_sources: tuple[str, ...] = LUNG_SPLIT_SOURCES
