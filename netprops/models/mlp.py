"""Fully connected network (the coursework's 784→500→100→100→10 and its relatives).

``MLP(layer_sizes)`` is ``flatten → [Linear → norm → activation → dropout] × hidden
→ Linear → output_activation``; each hidden layer's pre-activation (the value
the activation is applied to) and output are exposed by ``get_layer_outputs``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import check_choice, check_positive_int, check_probability, check_type
from ..init import INIT_SCHEMES, init_network, scheme_std
from ..layers.activations import get_activation
from ..layers.dropout import DropConnectLinear, Dropout
from ..layers.norm import BatchNorm1d, LayerNorm
from .base import ZooModel, flatten_input, make_linear, model_generator

__all__ = ["MLP", "MLP_NORMS", "MLPLayer", "check_layer_sizes"]

MLP_NORMS: tuple[str | None, ...] = (None, "layer", "batch")
"""Values of ``norm``: none, netprops ``LayerNorm`` or ``BatchNorm1d``."""


def check_layer_sizes(layer_sizes: Any) -> tuple[int, ...]:
    """Return ``layer_sizes`` as a tuple of ints; it must list >= 2 widths, each >= 1.

    Raises
    ------
    TypeError
        if it is not a tuple or list of ints.
    ValueError
        if it has fewer than 2 entries or an entry is < 1.
    """
    check_type("layer_sizes", layer_sizes, (tuple, list))
    if len(layer_sizes) < 2:
        raise ValueError(
            f"layer_sizes must list at least 2 widths (input and output, e.g. [784, 10]), "
            f"got {layer_sizes!r}"
        )
    return tuple(check_positive_int(f"layer_sizes[{i}]", n) for i, n in enumerate(layer_sizes))


def _check_init(init: Any, init_params: Any) -> dict[str, Any]:
    """Validate an ``init`` scheme name and its parameters before anything is built."""
    if init_params is not None:
        check_type("init_params", init_params, Mapping)
        if init is None:
            raise ValueError(
                "init_params was given without init; name a scheme, e.g. init='normal'"
            )
    if init is None:
        return {}
    check_type("init", init, str)
    check_choice("init", init, INIT_SCHEMES)
    params = dict(init_params or {})
    scheme_std(torch.empty(1, 1, device="meta"), init, **params)  # raises for bad names/params
    return params


def _make_norm(norm: str | None, features: int) -> nn.Module:
    if norm == "layer":
        return LayerNorm(features)
    if norm == "batch":
        return BatchNorm1d(features)
    return nn.Identity()


class MLPLayer(nn.Module):
    """One hidden layer: ``post = dropout(act(norm(linear(h)))) [+ h]``.

    ``linear`` is an ``nn.Linear``, or a netprops ``DropConnectLinear`` when
    ``dropconnect > 0``; ``norm`` and ``dropout`` are ``nn.Identity`` when off.
    With ``skip`` the input is added to the output (needs equal widths).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        activation: nn.Module,
        norm: str | None,
        dropout: float,
        dropconnect: float,
        skip: bool,
        generator: torch.Generator | None,
    ) -> None:
        super().__init__()
        if skip and in_features != out_features:
            raise ValueError(
                f"a skip connection needs equal widths, got {in_features} -> {out_features}"
            )
        self.skip = skip
        self.linear: nn.Module
        if dropconnect > 0:
            # Its own reset is torch's default init, drawn from ``generator``.
            self.linear = DropConnectLinear(
                in_features, out_features, p=dropconnect, generator=generator
            )
        else:
            self.linear = make_linear(in_features, out_features, generator=generator)
        self.norm = _make_norm(norm, out_features)
        self.act = activation
        self.dropout = Dropout(dropout, generator=generator) if dropout > 0 else nn.Identity()

    def pre_post(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(pre, post)``: the activation's input and the layer's output."""
        pre = self.norm(self.linear(h))
        post = self.dropout(self.act(pre))
        return pre, (h + post if self.skip else post)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.pre_post(h)[1]

    def extra_repr(self) -> str:
        return f"skip={self.skip}"


class MLP(ZooModel):
    """Fully connected network on flattened input.

    ``flatten → hidden1 … hiddenK → output``, each hidden layer being
    ``Linear → norm → activation → dropout`` (:class:`MLPLayer`), the output
    layer a plain ``Linear`` followed by ``output_activation`` if given.

    Parameters
    ----------
    layer_sizes : sequence of int
        Widths from the flattened input to the output, e.g. ``[784, 500, 100, 100, 10]``;
        at least 2 entries, each >= 1.
    activation : str
        Hidden activation, a name for :func:`netprops.layers.activations.get_activation`.
    output_activation : str, optional
        Activation applied to the output layer (e.g. ``"sigmoid"``); ``None`` gives logits.
    norm : {None, "layer", "batch"}
        Normalization between each hidden ``Linear`` and its activation
        (netprops ``LayerNorm`` / ``BatchNorm1d``).
    dropout : float
        Drop probability in [0, 1) after each hidden activation (netprops ``Dropout``).
    dropconnect : float
        Weight-drop probability in [0, 1); when > 0 the hidden ``Linear`` layers
        are netprops ``DropConnectLinear`` (the output layer stays ``nn.Linear``).
    init : str, optional
        A :data:`netprops.init.INIT_SCHEMES` name applied with
        :func:`netprops.init.init_network` (biases zeroed); ``None`` keeps torch's
        default init ``U(±1/√fan_in)`` for weights and biases.
    residual : bool
        Add each hidden layer's input to its output where the widths are equal
        (hidden layers 2.. whose width equals the previous one):
        ``h_k = h_{k-1} + dropout(act(norm(W h_{k-1} + b)))``. The parameters are
        those of the plain network, so the two compare at equal size.
    init_params : mapping, optional
        Parameters of ``init`` (e.g. ``{"std": 0.01}`` for ``"normal"``).
    activation_params : mapping, optional
        Keyword arguments of the hidden activation (``negative_slope``, ``alpha``).
    generator : torch.Generator, optional
        CPU generator; the model draws one seed from it for a private generator
        used for the initial weights and the seed of the dropout / DropConnect
        masks (see :class:`~netprops.models.base.ZooModel`). ``None`` draws from
        torch's default generator.

    Shape
    -----
    Input ``(N, *)`` with ``prod(*) == layer_sizes[0]`` (e.g. ``(N, 1, 28, 28)``
    for 784), output ``(N, layer_sizes[-1])``.

    Layer outputs
    -------------
    ``get_layer_outputs(x)`` gives, for each hidden layer ``k = 1 … K``,
    ``"hiddenk.pre"`` (the activation's input: the Linear output, normalized
    when ``norm`` is set) and ``"hiddenk.post"`` (the layer's output as fed to
    the next layer: after activation, dropout and skip), each ``(N, width_k)``;
    then ``"output"`` ``(N, layer_sizes[-1])``.

    Raises
    ------
    TypeError, ValueError
        for a bad argument (fewer than 2 or non-positive sizes, unknown
        activation / norm / init names — the valid ones are listed), for
        ``residual=True`` without two consecutive equal-width hidden layers,
        and in ``forward`` for input of the wrong shape.

    Examples
    --------
    >>> from netprops import make_generator
    >>> net = MLP([784, 500, 100, 100, 10], generator=make_generator(0))
    >>> net.count_parameters()
    453710
    >>> list(net.get_layer_outputs(torch.zeros(2, 1, 28, 28)))[:3]
    ['hidden1.pre', 'hidden1.post', 'hidden2.pre']
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        activation: str = "relu",
        output_activation: str | None = None,
        norm: str | None = None,
        dropout: float = 0.0,
        dropconnect: float = 0.0,
        init: str | None = None,
        residual: bool = False,
        *,
        init_params: Mapping[str, Any] | None = None,
        activation_params: Mapping[str, Any] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.layer_sizes = sizes = check_layer_sizes(layer_sizes)
        if activation_params is not None:
            check_type("activation_params", activation_params, Mapping)
        act_params = dict(activation_params or {})
        get_activation(activation, **act_params)  # validate before building anything
        if output_activation is not None:
            get_activation(output_activation)
        self.norm_kind = check_choice("norm", norm, MLP_NORMS)
        self.drop_prob = check_probability("dropout", dropout)
        self.dropconnect = check_probability("dropconnect", dropconnect)
        params = _check_init(init, init_params)
        self.init = init
        self.residual = check_type("residual", residual, bool)
        hidden = sizes[1:-1]
        skips = [k > 0 and hidden[k - 1] == hidden[k] for k in range(len(hidden))]
        if residual and not any(skips):
            raise ValueError(
                f"residual=True needs two consecutive hidden layers of equal width, "
                f"got layer_sizes={list(sizes)}"
            )
        g = model_generator(generator)
        for k, (n_in, n_out) in enumerate(zip(sizes[:-2], hidden, strict=True), start=1):
            layer = MLPLayer(
                n_in,
                n_out,
                activation=get_activation(activation, **act_params),
                norm=norm,
                dropout=self.drop_prob,
                dropconnect=self.dropconnect,
                skip=residual and skips[k - 1],
                generator=g,
            )
            self.add_module(f"hidden{k}", layer)
        self.n_hidden = len(hidden)
        self.output = make_linear(sizes[-2], sizes[-1], generator=g)
        self.output_act = (
            nn.Identity() if output_activation is None else get_activation(output_activation)
        )
        if init is not None:
            init_network(self, init, generator=g, **params)
        self._seed_masks_from(g)

    def hidden_layers(self) -> list[MLPLayer]:
        """The hidden layers ``hidden1 … hiddenK`` in order."""
        return [getattr(self, f"hidden{k}") for k in range(1, self.n_hidden + 1)]

    def _steps(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        h = flatten_input(type(self).__name__, x, self.layer_sizes[0])
        for k, layer in enumerate(self.hidden_layers(), start=1):
            pre, h = layer.pre_post(h)
            yield f"hidden{k}.pre", pre
            yield f"hidden{k}.post", h
        yield "output", self.output_act(self.output(h))

    def extra_repr(self) -> str:
        return (
            f"layer_sizes={list(self.layer_sizes)}, norm={self.norm_kind!r}, "
            f"dropout={self.drop_prob}, dropconnect={self.dropconnect}, "
            f"init={self.init!r}, residual={self.residual}"
        )
