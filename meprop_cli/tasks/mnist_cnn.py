"""MNIST with the meProp-CNN paper's network: two 5×5 convolutions with max-pooling, then FC 1024 → FC 10.

Same data and split as mnist_mlp (pixels / 255, dev = first 5,000 training images); the images stay
flat in memory and the model views them as 1×28×28.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from meprop_cli.data.idx import load_mnist
from meprop_cli.methods import Method
from meprop_cli.tasks.classification import TensorClassificationTask

IMAGE_SIDE = 28


class MnistCnn(nn.Module):
    """conv k×k×c₁ (stride 1, same padding) → [BN] → ReLU → 2×2 max-pool → ... → FC hidden → ReLU → FC.

    Convolutions come from method.make_conv (meProp-CNN sparsifies their output gradient), the fully
    connected layers from method.make_linear (full gradients under meprop_cnn, as in the paper).
    Batch norm sits after each convolution, before the ReLU (the paper, §2.3).
    """

    def __init__(self, method: Method, channels: list[int], kernel_size: int, batch_norm: bool,
                 n_classes: int, dropout: float) -> None:
        super().__init__()
        sizes = [1, *channels]
        # With batch norm its shift β plays the bias, so the convolution has none.
        self.convs = nn.ModuleList(method.make_conv(a, b, kernel_size, 1, kernel_size // 2, bias=not batch_norm)
                                   for a, b in zip(sizes, sizes[1:]))
        self.norms = nn.ModuleList(nn.BatchNorm2d(c) if batch_norm else nn.Identity() for c in channels)
        side = IMAGE_SIDE // 2 ** len(channels)  # each 2×2 max-pool halves the side (28 → 14 → 7)
        fc_sizes = [channels[-1] * side * side, *method.hidden]
        self.hidden = nn.ModuleList(method.make_linear(a, b, "hidden") for a, b in zip(fc_sizes, fc_sizes[1:]))
        self.output = method.make_linear(fc_sizes[-1], n_classes, "output")
        self.pool = nn.MaxPool2d(2, 2)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(-1, 1, IMAGE_SIDE, IMAGE_SIDE)
        for conv, norm in zip(self.convs, self.norms):
            x = self.pool(torch.relu(norm(conv(x))))
        x = x.flatten(1)
        for layer in self.hidden:
            x = self.dropout(torch.relu(layer(x)))
        return self.output(x)


class MnistCnnTask(TensorClassificationTask):
    def load(self) -> None:
        self.set_splits(load_mnist(self.data_root, self.cfg.dev_size), scale=255.0)

    def build_model(self, method: Method) -> nn.Module:
        self.topk_ratio = method.topk_ratio
        self.model = MnistCnn(method, list(self.cfg.channels), self.cfg.kernel_size, self.cfg.batch_norm,
                              self.n_classes, self.cfg.dropout)
        return self.model

    def describe(self) -> dict[str, Any]:
        """Sizes, the meProp-CNN settings, and (at the end of training) each conv layer's gradient sparsity."""
        facts: dict[str, Any] = {**super().describe(), "batch_norm": bool(self.cfg.batch_norm),
                                 "topk_ratio": getattr(self, "topk_ratio", None)}
        if hasattr(self, "model"):
            facts["conv_grad_nonzero"] = {f"conv{i + 1}": conv.stats.summary()
                                          for i, conv in enumerate(self.model.convs)}
        return facts
