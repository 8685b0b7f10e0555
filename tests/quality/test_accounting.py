"""The suite's false-failure accounting (tests/properties/conftest.py): declared uses fit
the 1e-6 budget.

Imports every test module of tests/properties and tests/quality so that all
``@statistical`` / ``register_seeded`` declarations are in the registry, whatever
subset of the suite is being run.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

from properties.conftest import (
    ALPHA,
    DEVICE_MULTIPLICITY,
    STATISTICAL_CAPACITY,
    STATISTICAL_TESTS,
    SUITE_FALSE_FAILURE_BUDGET,
    budget_used,
    examples,
    registry_key,
)

#: Public checks whose verdict on a correct subject has a false-failure probability.
STATISTICAL_CHECKS = (
    "check_expectation_equal",
    "check_drop_rate",
    "check_masks_independent",
    "check_init_distribution",
    "check_variance_preserved",
    "check_model_variance",
    "check_dead_units",
    "check_saturation",
    "check_initial_loss",
)
PACKAGES = ("properties", "quality")


def _test_modules() -> list[ModuleType]:
    modules = []
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            if info.name.startswith("test_"):
                modules.append(importlib.import_module(f"{package_name}.{info.name}"))
    return modules


def _test_functions() -> list[tuple[str, object]]:
    found = []
    for module in _test_modules():
        for name, obj in vars(module).items():
            if name.startswith("test_") and callable(obj):
                found.append((registry_key(obj), obj))
    return found


def test_alpha_is_derived_from_the_budget():
    assert ALPHA == SUITE_FALSE_FAILURE_BUDGET / (STATISTICAL_CAPACITY * DEVICE_MULTIPLICITY)
    assert SUITE_FALSE_FAILURE_BUDGET == 1e-6


def test_declared_statistical_uses_fit_the_budget():
    _test_modules()
    assert len(STATISTICAL_TESTS) >= 10
    calls = sum(use.calls for use in STATISTICAL_TESTS.values())
    table = "\n".join(
        f"  {use.test}: {use.examples} examples × {use.checks} checks at alpha {use.alpha:.3g}"
        for use in STATISTICAL_TESTS.values()
    )
    assert all(use.alpha <= ALPHA for use in STATISTICAL_TESTS.values()), table
    assert calls <= STATISTICAL_CAPACITY, f"{calls} statistical check calls:\n{table}"
    assert budget_used() <= SUITE_FALSE_FAILURE_BUDGET, table


def test_declared_examples_match_the_hypothesis_settings():
    settings_attr = "_hypothesis_internal_use_settings"  # where @settings stores its object
    checked = 0
    for test_id, fn in _test_functions():
        declared = getattr(fn, "_netprops_statistical", None)
        if declared is None:
            continue
        max_examples, explicit = declared
        use = STATISTICAL_TESTS[test_id]
        assert use.examples == max_examples + explicit, test_id
        assert len(getattr(fn, "hypothesis_explicit_examples", ())) == explicit, test_id
        applied = getattr(fn, settings_attr, None)
        if applied is not None:  # a later @settings must not raise the count
            assert applied.max_examples == examples(max_examples), test_id
        checked += 1
    assert checked >= 10


def test_every_statistical_check_call_is_budgeted():
    """A test calling a statistical check is registered, or is a negative control
    (it expects the check to reject: its calls sit under pytest.raises)."""
    unbudgeted = []
    for test_id, fn in _test_functions():
        if test_id in STATISTICAL_TESTS:
            continue
        target = fn.hypothesis.inner_test if hasattr(fn, "hypothesis") else fn
        source = inspect.getsource(target)
        calls = [name for name in STATISTICAL_CHECKS if f"{name}(" in source]
        if calls and "pytest.raises(PropertyViolation" not in source:
            unbudgeted.append(f"{test_id} calls {calls}")
    assert not unbudgeted, "\n".join(unbudgeted)


def test_registry_keys_name_real_tests():
    names = {test_id for test_id, _ in _test_functions()}
    assert set(STATISTICAL_TESTS) <= names
