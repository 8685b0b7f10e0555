"""The model zoo: small, well-defined networks for the property and convergence checks.

Build by name with :func:`create` (names from :func:`list_models`) or use the
classes directly. Every model is built on the CPU from an explicit generator
(``generator=`` / ``seed=``), exposes ``count_parameters()`` and
``get_layer_outputs(x)``, and takes 1×28×28 input by default and 3×32×32 with
``in_channels=3`` / ``input_shape=(3, 32, 32)``.
"""

from __future__ import annotations

from .base import STANDARD_INPUT_SHAPES, ZooModel, count_parameters, resolve_input_shape
from .cnn import (
    CNN_NORMS,
    KERNEL_PLANS,
    ConvNet,
    ConvUnit,
    DepthCNN,
    KernelCNN,
    SimpleCNN,
    conv_parameter_count,
)
from .mlp import MLP, MLP_NORMS, MLPLayer
from .registry import ModelEntry, create, get_model_entry, list_models, register_model
from .resnet import RESNET_BLOCKS, ResidualMLP, ResNet

__all__ = [
    "CNN_NORMS",
    "KERNEL_PLANS",
    "MLP",
    "MLP_NORMS",
    "RESNET_BLOCKS",
    "STANDARD_INPUT_SHAPES",
    "ConvNet",
    "ConvUnit",
    "DepthCNN",
    "KernelCNN",
    "MLPLayer",
    "ModelEntry",
    "ResNet",
    "ResidualMLP",
    "SimpleCNN",
    "ZooModel",
    "conv_parameter_count",
    "count_parameters",
    "create",
    "get_model_entry",
    "list_models",
    "register_model",
    "resolve_input_shape",
]
