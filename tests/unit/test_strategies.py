"""The public Hypothesis strategies draw what they promise."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netprops import strategies as nps
from netprops.devices import available_devices

FIXTURE_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@given(nps.seeds(), nps.probabilities(), nps.widths(), nps.depths(), nps.batch_sizes())
def test_scalar_strategies_stay_in_range(seed, p, width, depth, batch):
    assert 0 <= seed < 2**32
    assert 0.0 <= p < 1.0
    assert width >= 1 and depth >= 1 and batch >= 1


def test_batch_sizes_include_one():
    assert nps.batch_sizes().validate() is None
    found = []

    @given(nps.batch_sizes())
    @settings(max_examples=200, database=None)
    def probe(batch):
        found.append(batch)

    probe()
    assert 1 in found


@FIXTURE_OK
@given(data=st.data())
def test_tensors_are_built_on_the_device_with_the_dtype(device, data):
    shape = data.draw(nps.shapes(min_dims=2, max_dims=3, max_side=6))
    x = data.draw(nps.tensors(shape, dtype=torch.float64, device=device))
    assert x.shape == shape
    assert x.dtype == torch.float64
    assert x.device.type == device
    assert torch.isfinite(x).all()


@FIXTURE_OK
@given(data=st.data())
def test_constant_rows_have_zero_spread(device, data):
    shape = data.draw(nps.shapes(min_dims=1, max_dims=3, min_side=1, max_side=6))
    x = data.draw(nps.tensors(shape, device=device, kinds=("constant_rows",)))
    rows = x.reshape(shape[0], -1) if len(shape) >= 2 else x.reshape(1, -1)
    assert torch.equal(rows, rows[:, :1].expand_as(rows))


def test_same_seed_same_tensor():
    build = nps._build
    a = build((3, 4), torch.float32, "cpu", 11, "offset", 100.0)
    b = build((3, 4), torch.float32, "cpu", 11, "offset", 100.0)
    assert torch.equal(a, b)
    assert a.mean() > 50


@given(nps.mlp_configs(max_depth=3, max_width=32))
def test_mlp_configs(config):
    assert 2 <= len(config.layer_sizes) <= 4
    assert all(1 <= n <= 32 for n in config.layer_sizes)


@given(nps.conv_configs())
def test_conv_configs_produce_nonempty_outputs(config):
    out_h = (config.height + 2 * config.padding - config.kernel_size) // config.stride + 1
    out_w = (config.width + 2 * config.padding - config.kernel_size) // config.stride + 1
    assert out_h >= 1 and out_w >= 1
    assert config.padding <= config.kernel_size // 2


@given(nps.devices())
def test_devices_draw_only_available_ones(dev):
    assert dev in available_devices()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="max_value < 1"):
        nps.probabilities(max_value=1.0)
    with pytest.raises(ValueError, match="kinds must be a non-empty subset"):
        nps.tensors((2, 2), kinds=("weird",))
    with pytest.raises(ValueError, match="min_value must be an int >= 1"):
        nps.widths(min_value=0)
