"""Attention layers: squeeze-and-excitation and multi-head self-attention.

* :class:`SqueezeExcitation` — channel attention of Hu et al. 2018: global
  average pool → 1×1 conv (FC) → activation → 1×1 conv → gate → rescale.
  Parameter names (``fc1``, ``fc2``) match ``torchvision.ops.SqueezeExcitation``,
  so weights load across with ``load_state_dict``.
* :class:`MultiHeadSelfAttention` — scaled dot-product self-attention written
  out (projections, scores, mask, softmax, dropout, output projection) with the
  math and the parameter layout (``in_proj_weight``, ``in_proj_bias``,
  ``out_proj``) of ``torch.nn.MultiheadAttention(batch_first=True)``.

Both draw their initial weights (and the attention dropout masks) from an
explicit ``torch.Generator``; construction never touches the global RNG
unless ``generator=None`` is passed, which means "use torch's default
generator" as the caller's choice.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import skip_init

from ..errors import (
    check_choice,
    check_float_tensor,
    check_positive_int,
    check_probability,
    check_type,
)
from ..init import fans, he_uniform_, uniform_, xavier_uniform_
from ..seeding import resolve_generator
from .activations import ACTIVATIONS, get_activation
from .dropout import Dropout

__all__ = ["GATES", "MultiHeadSelfAttention", "SqueezeExcitation"]

GATES: tuple[str, ...] = ("sigmoid", "hard_sigmoid")


def _activation(activation: str) -> nn.Module:
    check_type("activation", activation, str)
    return get_activation(check_choice("activation", activation, ACTIVATIONS))


def _check_generator(generator: torch.Generator | None) -> torch.Generator | None:
    if generator is not None:
        check_type("generator", generator, torch.Generator)
    return generator


def _torch_default_init_(
    weight: torch.Tensor, bias: torch.Tensor | None, generator: torch.Generator | None
) -> None:
    """Draw like ``nn.Linear``/``nn.Conv2d.reset_parameters`` but from ``generator``.

    kaiming_uniform(a=√5) gives the bound 1/√fan_in for the weight; the bias
    uses the same bound.
    """
    he_uniform_(weight, a=math.sqrt(5), nonlinearity="leaky_relu", generator=generator)
    if bias is not None:
        fan_in, _ = fans(weight)
        uniform_(bias, 1.0 / math.sqrt(fan_in), generator=generator)


# --------------------------------------------------------------------------- SE
class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation channel attention (Hu et al. 2018).

    ``y = x · gate(fc2(act(fc1(mean_{H,W} x))))`` with one gate value per
    (example, channel).

    Parameters
    ----------
    channels : int
        Number of input channels ``C`` (>= 1).
    reduction : int
        Squeeze ratio; the hidden width is ``max(1, channels // reduction)``.
    activation : str
        Name for :func:`netprops.layers.activations.get_activation`.
    gate : str
        ``"sigmoid"`` (values in (0, 1)) or ``"hard_sigmoid"`` (values in [0, 1]).
    generator : torch.Generator, optional
        CPU generator for the initial weights (torch's default conv init,
        ``U(-1/√fan_in, 1/√fan_in)``); ``None`` draws from torch's default generator.

    Shape
    -----
    input ``(N, C, H, W)`` floating; output the same shape and dtype.

    Raises
    ------
    TypeError / ValueError
        for a bad argument (non-int, < 1, unknown activation or gate), and in
        ``forward`` for an input that is not 4-D with ``C == channels``.
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        activation: str = "relu",
        gate: str = "sigmoid",
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.reduction = check_positive_int("reduction", reduction)
        check_type("gate", gate, str)
        self.gate = check_choice("gate", gate, GATES)
        generator = resolve_generator(_check_generator(generator), "cpu")
        self.hidden = max(1, self.channels // self.reduction)
        self.fc1 = skip_init(nn.Conv2d, self.channels, self.hidden, 1)
        self.activation = _activation(activation)
        self.fc2 = skip_init(nn.Conv2d, self.hidden, self.channels, 1)
        self.scale_activation = get_activation("sigmoid") if gate == "sigmoid" else nn.Hardsigmoid()
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Redraw ``fc1`` then ``fc2`` (weight, bias) from ``generator``."""
        with torch.no_grad():
            for fc in (self.fc1, self.fc2):
                _torch_default_init_(fc.weight, fc.bias, generator)

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """Return the gate values, shape ``(N, C, 1, 1)``."""
        self._check_input(x)
        squeezed = x.mean(dim=(2, 3), keepdim=True)
        return self.scale_activation(self.fc2(self.activation(self.fc1(squeezed))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale(x)

    def _check_input(self, x: torch.Tensor) -> None:
        check_float_tensor("x", x)
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"x must have shape (N, {self.channels}, H, W), got {tuple(x.shape)}")

    def extra_repr(self) -> str:
        return f"channels={self.channels}, hidden={self.hidden}, gate={self.gate!r}"


# --------------------------------------------------------------------------- MHSA
class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention on batch-first input, written out.

    For ``x`` of shape ``(N, L, E)`` with ``H`` heads of size ``D = E / H``::

        q, k, v = split(x @ in_proj_weight.T + in_proj_bias)        # (N, H, L, D) each
        A = softmax(q k^T / √D + mask)                               # (N, H, L, L)
        y = concat_heads(dropout(A) v) @ out_proj.weight.T + out_proj.bias

    The same computation, parameter names and initialization as
    ``torch.nn.MultiheadAttention(E, H, dropout, bias, batch_first=True)`` called
    as ``mha(x, x, x)``, so ``load_state_dict(mha.state_dict())`` (or
    :meth:`load_from_torch`) copies its weights.

    Parameters
    ----------
    embed_dim : int
        ``E`` (>= 1), divisible by ``num_heads``.
    num_heads : int
        ``H`` (>= 1).
    dropout : float
        Drop probability in [0, 1) for the attention weights (training mode only).
    bias : bool
        Whether the input and output projections have biases.
    generator : torch.Generator, optional
        CPU generator for the initial weights (torch's scheme: Xavier-uniform
        ``in_proj_weight``, default-Linear ``out_proj.weight``, zero biases) and,
        afterwards, for the dropout masks (``attn_dropout``, a netprops
        :class:`~netprops.layers.dropout.Dropout`). ``None``: torch's default
        generator. The masks are drawn on the input's device, so after moving
        the module off the CPU reseed them with ``attn_dropout.manual_seed(seed)``.

    Raises
    ------
    TypeError / ValueError
        for a bad argument; ValueError when ``embed_dim % num_heads != 0``.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.embed_dim = check_positive_int("embed_dim", embed_dim)
        self.num_heads = check_positive_int("num_heads", num_heads)
        if self.embed_dim % self.num_heads != 0:
            raise ValueError(
                f"embed_dim must be divisible by num_heads, got embed_dim={embed_dim} "
                f"and num_heads={num_heads}"
            )
        self.head_dim = self.embed_dim // self.num_heads
        self.dropout = check_probability("dropout", dropout)
        check_type("bias", bias, bool)
        generator = resolve_generator(_check_generator(generator), "cpu")
        e = self.embed_dim
        self.in_proj_weight = nn.Parameter(torch.empty(3 * e, e))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * e)) if bias else None
        self.out_proj = skip_init(nn.Linear, e, e, bias=bias)
        self.attn_dropout = Dropout(self.dropout, generator=generator)
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Redraw the weights from ``generator`` as torch's MultiheadAttention does."""
        with torch.no_grad():
            # torch's order: out_proj is built (an nn.Linear draws its weight, then its
            # bias) before in_proj_weight is drawn, so one RNG state gives the same tensors
            _torch_default_init_(self.out_proj.weight, self.out_proj.bias, generator)
            xavier_uniform_(self.in_proj_weight, generator=generator)
            if self.in_proj_bias is not None:
                self.in_proj_bias.zero_()
                self.out_proj.bias.zero_()

    @torch.no_grad()
    def load_from_torch(self, mha: nn.MultiheadAttention) -> MultiHeadSelfAttention:
        """Copy the weights of a ``torch.nn.MultiheadAttention`` of the same shape.

        Raises
        ------
        TypeError
            if ``mha`` is not an ``nn.MultiheadAttention``.
        ValueError
            if its embed_dim, num_heads or bias differ, or it uses separate
            key/value dims, ``add_bias_kv`` or ``add_zero_attn``.
        """
        check_type("mha", mha, nn.MultiheadAttention)
        theirs = (mha.embed_dim, mha.num_heads, mha.in_proj_bias is not None)
        ours = (self.embed_dim, self.num_heads, self.in_proj_bias is not None)
        if theirs != ours:
            raise ValueError(f"mha must have (embed_dim, num_heads, bias) == {ours}, got {theirs}")
        if not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn:
            raise ValueError(
                "mha must use kdim == vdim == embed_dim, add_bias_kv=False, add_zero_attn=False"
            )
        self.load_state_dict(mha.state_dict())
        return self

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        *,
        need_weights: bool = False,
        average_attn_weights: bool = True,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Attend ``x`` to itself.

        Parameters
        ----------
        x : Tensor
            ``(N, L, E)`` floating.
        attn_mask : Tensor, optional
            ``(L, L)`` or ``(N·H, L, L)``; bool (``True`` = may NOT attend) or
            floating (added to the scores).
        key_padding_mask : Tensor, optional
            ``(N, L)``; bool (``True`` = padding key, ignored) or floating (added).
        need_weights : bool
            Also return the attention weights (after dropout, as torch does).
        average_attn_weights : bool
            Average the returned weights over heads: ``(N, L, L)``; else ``(N, H, L, L)``.

        Returns
        -------
        Tensor ``(N, L, E)``, or ``(output, weights)`` when ``need_weights``.
        A query row whose keys are all masked gives NaN, as a softmax over an
        empty set (torch's explicit path does the same).

        Raises
        ------
        TypeError / ValueError
            for a non-floating ``x``, a wrong rank or ``E``, or a mask of wrong
            shape or dtype.
        """
        check_float_tensor("x", x)
        if x.dim() != 3 or x.shape[-1] != self.embed_dim:
            raise ValueError(
                f"x must have shape (N, L, {self.embed_dim}) (batch first), got {tuple(x.shape)}"
            )
        n, length, e = x.shape
        h, d = self.num_heads, self.head_dim
        q, k, v = (
            t.reshape(n, length, h, d).transpose(1, 2)
            for t in F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        )
        scores = (q * (1.0 / math.sqrt(d))) @ k.transpose(-2, -1)
        additive = self._additive_mask(attn_mask, key_padding_mask, n, length, x)
        if additive is not None:
            scores = scores + additive
        weights = self.attn_dropout(scores.softmax(dim=-1))
        out = self.out_proj((weights @ v).transpose(1, 2).reshape(n, length, e))
        if not need_weights:
            return out
        return out, (weights.mean(dim=1) if average_attn_weights else weights)

    def _additive_mask(
        self,
        attn_mask: torch.Tensor | None,
        key_padding_mask: torch.Tensor | None,
        n: int,
        length: int,
        x: torch.Tensor,
    ) -> torch.Tensor | None:
        """Merge both masks into one additive tensor broadcastable to ``(N, H, L, L)``."""
        total = None
        if attn_mask is not None:
            mask = _as_additive("attn_mask", attn_mask, x)
            if mask.shape == (length, length):
                total = mask
            elif mask.shape == (n * self.num_heads, length, length):
                total = mask.view(n, self.num_heads, length, length)
            else:
                raise ValueError(
                    f"attn_mask must have shape ({length}, {length}) or "
                    f"({n * self.num_heads}, {length}, {length}), got {tuple(mask.shape)}"
                )
        if key_padding_mask is not None:
            mask = _as_additive("key_padding_mask", key_padding_mask, x)
            if mask.shape != (n, length):
                raise ValueError(
                    f"key_padding_mask must have shape ({n}, {length}), got {tuple(mask.shape)}"
                )
            mask = mask.view(n, 1, 1, length)
            total = mask if total is None else total + mask
        return total

    def extra_repr(self) -> str:
        return (
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, "
            f"bias={self.in_proj_bias is not None}"
        )


def _as_additive(name: str, mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Bool mask (True = blocked) → 0/-inf in ``x``'s dtype; floating mask → cast."""
    check_type(name, mask, torch.Tensor)
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=x.dtype, device=x.device).masked_fill_(
            mask.to(x.device), float("-inf")
        )
    if not mask.is_floating_point():
        raise TypeError(f"{name} must be a bool or floating tensor, got dtype {mask.dtype}")
    return mask.to(device=x.device, dtype=x.dtype)
