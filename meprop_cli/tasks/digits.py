"""The offline default: scikit-learn's bundled 8x8 digits, split once by a fixed permutation."""
from __future__ import annotations

import numpy as np

from meprop_cli.errors import ConfigError
from meprop_cli.tasks.classification import TensorClassificationTask


class DigitsTask(TensorClassificationTask):
    def load(self) -> None:
        from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

        digits = load_digits()
        x, y = digits.images.astype(np.float32), digits.target.astype(np.int64)
        dev, test = self.cfg.dev_size, self.cfg.test_size
        if dev < 1 or test < 1 or dev + test >= len(y):  # numpy would cut a negative or too large size silently
            raise ConfigError(f"task.dev_size={dev} and task.test_size={test} must each be at least 1 and together "
                              f"at most {len(y) - 1:,}, so that some of the {len(y):,} digits are left to train on")
        order = np.random.default_rng(self.cfg.split_seed).permutation(len(y))
        parts = {"dev": order[:dev], "test": order[dev:dev + test], "train": order[dev + test:]}
        self.set_splits({name: (x[idx], y[idx]) for name, idx in parts.items()}, scale=16.0)
