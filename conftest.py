"""Root fixtures for the netprops test suite (the plugin adds `device`, markers, profiles)."""

from __future__ import annotations

import pytest
import torch

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _no_global_rng_leak():
    """Fail a test that draws from (or reseeds) torch's global CPU RNG.

    Library code must draw through explicit generators; a leak would make
    results depend on test order.
    """
    before = torch.random.get_rng_state()
    yield
    after = torch.random.get_rng_state()
    assert torch.equal(before, after), (
        "test changed torch's global CPU RNG state: draw through a torch.Generator "
        "(netprops.make_generator) or wrap the draw in netprops.seeded_global_rng"
    )
