"""The offline default: scikit-learn's bundled 8x8 digits, split once by a fixed permutation."""
from __future__ import annotations

import numpy as np

from meprop_cli.tasks.classification import TensorClassificationTask


class DigitsTask(TensorClassificationTask):
    def load(self) -> None:
        from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

        digits = load_digits()
        x, y = digits.images.astype(np.float32), digits.target.astype(np.int64)
        order = np.random.default_rng(self.cfg.split_seed).permutation(len(y))
        dev, test = self.cfg.dev_size, self.cfg.test_size
        parts = {"dev": order[:dev], "test": order[dev:dev + test], "train": order[dev + test:]}
        self.set_splits({name: (x[idx], y[idx]) for name, idx in parts.items()}, scale=16.0)
