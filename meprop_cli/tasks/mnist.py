"""MNIST with an MLP (the meProp paper's setting): pixels / 255, dev = first 5,000 training images."""
from __future__ import annotations

from meprop_cli.data.idx import load_mnist
from meprop_cli.tasks.classification import TensorClassificationTask


class MnistMlpTask(TensorClassificationTask):
    def load(self) -> None:
        self.set_splits(load_mnist(self.data_root, self.cfg.dev_size), scale=255.0)
