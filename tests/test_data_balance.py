"""Class weights and the balanced sampler."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cxrkit.data import balanced_sampler, class_weights, load_table


def test_binary_weights_on_kermany(kermany_dir: Path) -> None:
    y = load_table(kermany_dir).targets()
    w = class_weights(y, "binary")
    assert w.dtype == np.float32 and w.shape == (2,)
    np.testing.assert_allclose(w, [5216 / (2 * 1341), 5216 / (2 * 3875)], rtol=1e-6)
    counts = np.bincount(y)
    assert abs(float((w * counts).sum()) - len(y)) < 1e-2  # sample-weighted mean is 1


def test_absent_class_gets_zero_weight() -> None:
    w = class_weights(np.array([0, 0, 2]), "multiclass", num_classes=4)
    assert w[1] == 0 and w[3] == 0
    np.testing.assert_allclose(w[[0, 2]], [3 / (2 * 2), 3 / (2 * 1)])


def test_multilabel_pos_weight(nih_dir: Path) -> None:
    table = load_table(nih_dir, label_column="findings")
    w = class_weights(table.targets(), "multilabel")
    assert w.shape == (14,)
    effusion = table.class_names.index("Effusion")
    assert abs(w[effusion] - 830 / 170) < 1e-4
    assert (w > 1).all()  # every finding is rarer than its absence here


def test_balanced_sampler_draws_classes_equally(kermany_dir: Path) -> None:
    y = load_table(kermany_dir).targets()
    sampler = balanced_sampler(y, seed=0)
    drawn = np.array(list(sampler))
    assert len(drawn) == len(y)
    share_normal = (y[drawn] == 0).mean()
    assert abs(share_normal - 0.5) < 0.03  # vs 0.257 in the data
    again = np.array(list(balanced_sampler(y, seed=0)))
    np.testing.assert_array_equal(drawn, again)


def test_balanced_sampler_multilabel(nih_dir: Path) -> None:
    table = load_table(nih_dir, label_column="findings")
    y = table.targets()
    hernia = table.class_names.index("Hernia")  # 9 of 1000 films
    drawn = np.array(list(balanced_sampler(y, num_samples=20000, seed=0)))
    assert y[drawn, hernia].mean() > 5 * y[:, hernia].mean()


def test_multilabel_pos_weight_skips_uncertain() -> None:
    y = np.array([[1.0, 0.0], [0.0, np.nan], [np.nan, 1.0], [0.0, 0.0]], dtype=np.float32)
    w = class_weights(y, "multilabel")
    # finding 0: 1 positive, 2 negatives (one uncertain left out); finding 1: 1 and 2
    np.testing.assert_allclose(w, [2.0, 2.0])
