"""The netprops pytest plugin (``pytest11`` entry point ``netprops``).

pytest loads this module in every run of an environment where netprops is
installed, so it is inert until a project uses it: it imports neither torch,
scipy nor Hypothesis, sets no environment variable, loads no Hypothesis profile
and adds only ``--netprops-*`` options, ``netprops*`` markers and fixtures, and
the ``netprops_hypothesis_profile`` ini key. ``-p no:netprops`` switches it off.

One module per concern (each is a pytest plugin of its own, loaded through
``pytest_plugins`` below):

* :mod:`~netprops.plugin.options` — the command-line and ini options;
* :mod:`~netprops.plugin.profiles` — Hypothesis profiles, only when asked;
* :mod:`~netprops.plugin.devices` — the ``netprops_device`` fixture, CUDA skips, threads;
* :mod:`~netprops.plugin.collection` — ``netprops.spec`` declarations collected as tests;
* :mod:`~netprops.plugin.ledger` — what was verified on which device, at the end of the run;
* :mod:`~netprops.plugin.reporting` — JUnit XML properties, the JSON ledger, GitHub step
  summaries, the header line (and the public helpers other reports use).
"""

from __future__ import annotations

from .profiles import running_in_ci

pytest_plugins = [
    "netprops.plugin.options",
    "netprops.plugin.profiles",
    "netprops.plugin.devices",
    "netprops.plugin.collection",
    "netprops.plugin.ledger",
    "netprops.plugin.reporting",
]

__all__ = ["running_in_ci"]
