"""Random splits of an image set into train / validation / test parts (index arrays, no data)."""

from __future__ import annotations

import numpy as np


def random_split(n: int, n_valid: int, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint sorted (train, valid, test) indices of ``range(n)``: one permutation drawn with ``seed``, its
    first ``n_test`` entries test, the next ``n_valid`` validation, the rest training (the F-MNIST / MNIST
    validation split: n_test 0, 10000 of the 60000 training images)."""
    if n_valid < 1 or n_test < 0 or n_valid + n_test >= n:
        raise ValueError(f"cannot split {n} images into {n_valid} validation and {n_test} test images and a "
                         "non-empty training part")
    perm = np.random.default_rng(seed).permutation(n)
    test, valid, train = perm[:n_test], perm[n_test:n_test + n_valid], perm[n_test + n_valid:]
    return np.sort(train), np.sort(valid), np.sort(test)
