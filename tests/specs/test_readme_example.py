"""A LayerNorm written from scratch, declared once; pytest checks it on every device."""

import torch
from torch import nn

import netprops


class MyLayerNorm(nn.Module):
    """LayerNorm over the last dimension, written from scratch."""

    def __init__(self, dim: int = 8, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.normalized_shape = (dim,)
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True, unbiased=False)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


test_my_layer_norm = netprops.spec(
    MyLayerNorm,  # factory: returns a fresh module (class, function or lambda)
    inputs=(6, 8),  # input shape, batch first, or (generator, device, dtype) -> Tensor
    properties=[
        "batch_independent",
        "normalized",
        "shift_invariant",
        "train_eval_contract",
        "gradcheck",
        "device_parity",
    ],
    not_applicable={"expectation_equal": "deterministic layer"},
)
