"""Symmetry at initialization: zero or constant weights leave units interchangeable.

``check_symmetry_broken`` looks for units with identical incoming weights AND
gradients (to the dtype's relative tolerance). Zero / constant init must fail
it, random schemes must pass. Every width is >= 4: with random weights two units
tie only if all their >= 4 incoming weights agree to 1e-5 of the layer's
largest (probability <= (2.4e-5)⁴ per pair, even for ReLU units dead on the
whole batch whose gradients are all 0) — negligible next to ALPHA, so this is
not budgeted as a statistical test.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from netprops import PropertyViolation, make_generator
from netprops.checks.symmetry import check_symmetry_broken
from netprops.init import NetworkInitializer, constant_, initializable_modules
from netprops.strategies import seeds

from .conftest import hypothesis_settings, randn

layer_sizes = st.lists(st.integers(4, 24), min_size=3, max_size=5).map(tuple)
activations = st.sampled_from(["relu", "tanh", "sigmoid", "leaky_relu", "elu"])


@given(
    sizes=layer_sizes,
    activation=activations,
    scheme=st.sampled_from(["he", "he_uniform", "xavier", "xavier_normal", "lecun"]),
    batch=st.integers(1, 16),
    seed=seeds(),
)
@example(sizes=(4, 4, 4), activation="relu", scheme="he", batch=1, seed=0)
@hypothesis_settings(max_examples=15)
def test_random_init_breaks_symmetry(device, sizes, activation, scheme, batch, seed):
    model = NetworkInitializer(activation, scheme, sizes).build(make_generator(seed, device))
    result = check_symmetry_broken(model, randn((batch, sizes[0]), seed + 1, device), seed=seed)
    assert result.details["layers_checked"] == len(sizes) - 1


@given(
    sizes=layer_sizes,
    activation=activations,
    value=st.sampled_from([0.0, 0.1, -0.3]),
    batch=st.integers(1, 16),
    seed=seeds(),
)
@example(sizes=(4, 4, 4), activation="relu", value=0.0, batch=1, seed=0)
@hypothesis_settings(max_examples=15)
def test_zero_or_constant_init_keeps_units_tied(device, sizes, activation, value, batch, seed):
    model = NetworkInitializer(activation, "zeros", sizes).build(make_generator(seed, device))
    for _, layer in initializable_modules(model):
        constant_(layer.weight, value)
    x = randn((batch, sizes[0]), seed + 1, device)
    with pytest.raises(PropertyViolation, match="interchangeable units"):
        check_symmetry_broken(model, x, seed=seed)


@given(sizes=layer_sizes, seed=seeds())
@example(sizes=(4, 4, 4), seed=0)
@hypothesis_settings(max_examples=10)
def test_one_tied_pair_is_found(device, sizes, seed):
    model = NetworkInitializer("tanh", "xavier", sizes).build(make_generator(seed, device))
    first = initializable_modules(model)[0][1]
    with torch.no_grad():  # unit 1 copies unit 0's incoming weights, and its outgoing ones
        first.weight[1] = first.weight[0]
        nxt = initializable_modules(model)[1][1]
        nxt.weight[:, 1] = nxt.weight[:, 0]
    x = randn((3, sizes[0]), seed + 1, device)
    with pytest.raises(PropertyViolation, match=r"units \[0, 1\]"):
        check_symmetry_broken(model, x, seed=seed)
