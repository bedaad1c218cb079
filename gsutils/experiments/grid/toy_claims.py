"""The claims of the toy-dataset chapter (Grid Saliency S1.1), each measured on generated data.

:func:`record_toy` records the five properties S1.1 states (the strong bias is
exclusive, the bias digit always carries its texture, the weak bias occurs
elsewhere at the pool rate, 11 classes, the set sizes) and returns the rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gsutils.data.toy import bias_fraction_per_digit

__all__ = ["record_toy", "PAPER_SIZES"]

#: the supplement's training and test set sizes
PAPER_SIZES = (50_000, 1_000)


def record_toy(ledger: Any, toy: Any, *, n_textures: int, bias_digit: int, train_bias: Mapping[str, Any],
               test_bias: Mapping[str, Any], strong_labels: np.ndarray) -> list[Any]:
    """Record the S1.1 chapter's rows.

    ``toy``: the profile's :class:`gsutils.profiles.ToySettings`; ``n_textures``: the texture pool's
    size; ``train_bias`` / ``test_bias``: :func:`gsutils.data.toy.sample_bias` per bias (``"weak"``,
    ``"strong"``) over the whole training / test set; ``strong_labels``: the label maps of the
    strongly biased training images rendered for the page.
    """
    strong_frac = bias_fraction_per_digit(train_bias["strong"])
    weak_frac = bias_fraction_per_digit(train_bias["weak"])
    others_idx = [k for k in range(10) if k != bias_digit]
    pool_rate = 1 - (1 - 1 / n_textures) ** toy.n_parts
    rows = [ledger.check(
        "toy-strong-exclusive", "S1.1",
        "Strong bias: the bias texture occurs only with the biased digit",
        measured=float(np.nanmax(strong_frac[others_idx])),
        passed=bool(np.nanmax(strong_frac[others_idx]) == 0.0),
        criterion="largest share of images with the bias texture over the nine other digits == 0",
    ), ledger.check(
        "toy-strong-always", "S1.1",
        "The biased digit always carries the bias texture in its background",
        measured={"strong": float(strong_frac[bias_digit]), "weak": float(weak_frac[bias_digit])},
        passed=bool(strong_frac[bias_digit] == 1.0 and weak_frac[bias_digit] == 1.0),
        criterion="share of biased-digit images with the bias texture == 1, strong and weak",
    )]
    weak_other = float(np.nanmean(weak_frac[others_idx]))
    n_other = max(1, (train_bias["weak"].digits != bias_digit).sum())
    rows.append(ledger.check(
        "toy-weak-elsewhere", "S1.1",
        "Weak bias: the bias texture also occurs with the other digits (as an ordinary pool texture)",
        reported=round(pool_rate, 4), measured=weak_other,
        passed=bool(abs(weak_other - pool_rate) <= 3 * np.sqrt(pool_rate * (1 - pool_rate) / n_other)),
        criterion=(f"mean share over the other digits within 3 binomial standard errors of the pool rate "
                   f"1 - (1 - 1/{n_textures})^{toy.n_parts}"),
    ))
    classes = sorted(np.unique(strong_labels).tolist())
    rows.append(ledger.check(
        "toy-classes", "S1.1",
        "11 classes: ten digits and background",
        reported=11, measured=len(classes), passed=classes == list(range(11)),
        criterion="label values of the strongly biased training set == {0, ..., 10}",
    ))
    sizes = (len(train_bias["strong"]), len(test_bias["strong"]))
    rows.append(ledger.check(
        "toy-sizes", "S1.1",
        "50,000 training and 1,000 test images",
        reported=list(PAPER_SIZES), measured=list(sizes),
        passed=(sizes == PAPER_SIZES if (toy.n_train, toy.n_test) == PAPER_SIZES else None),
        criterion="set sizes equal the paper's (judged only where the profile asks for the paper's sizes)",
    ))
    return rows
