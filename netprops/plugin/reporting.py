"""Results CI systems can read: JUnit XML properties, a JSON file, GitHub step summaries.

The public helpers here are what every netprops report uses — the plugin's
ledger, and any other report that wants the same outputs (the convergence gate,
the CLI). None of them imports torch, and only :func:`record_result` needs a
pytest node.

* :func:`record_result` attaches a result to the running test as
  ``netprops_<field>`` user properties: pytest writes them into JUnit XML
  (``--junitxml``, one ``<property>`` per field), pytest-xdist carries them to
  the controller, and the netprops ledger counts the test under its
  ``property`` and ``device`` (``verified=False``: counted as *heuristic*).
* :func:`markdown_table` and :func:`append_step_summary` write a Markdown table
  to ``$GITHUB_STEP_SUMMARY`` (when set, else nothing).
* :func:`write_json` writes a JSON file atomically.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from numbers import Real
from pathlib import Path
from typing import Any

import pytest

from .options import explicitly_used, selected_devices

__all__ = [
    "PREFIX",
    "append_step_summary",
    "environment",
    "markdown_table",
    "record_result",
    "write_json",
]

#: Prefix of the user properties netprops records (and JUnit XML shows).
PREFIX = "netprops_"

#: Environment variable GitHub Actions sets to the file of the job's step summary.
STEP_SUMMARY = "GITHUB_STEP_SUMMARY"

_FIELD = re.compile(r"[a-z][a-z0-9_]*\Z")


def _plain(value: Any) -> Any:
    """``value`` as JSON / JUnit / pytest-xdist can carry it (numpy and torch scalars to float)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, Real):
        return float(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return str(value)


def record_result(
    node: pytest.Item,
    *,
    property: str | None = None,
    device: str | None = None,
    statistic: float | None = None,
    bound: Any = None,
    alpha: float | None = None,
    seed: int | None = None,
    replay: str | None = None,
    verified: bool | None = None,
    **details: Any,
) -> None:
    """Attach a result to the test ``node`` (e.g. ``request.node``) as JUnit XML properties.

    Each field given (None: left out) becomes the user property
    ``netprops_<name>``; numbers and tuples are stored as plain floats and lists.
    With ``property`` and ``device``, the netprops ledger counts the test in that
    row and column (``verified=False``: as *heuristic*, not as verified).

    Parameters
    ----------
    node : the running test item.
    property : ledger row, e.g. a property name or ``"convergence gate"``.
    device : ``"cpu"`` or ``"cuda"`` (ledger column).
    statistic, bound, alpha, seed : what was tested: the test statistic, its
        acceptance bound (a number or an interval), the false-failure rate, the seed.
    replay : one line that replays the result (a command or a Python call).
    verified : False for a heuristic without a stated false-failure rate.
    details : further fields, lower-case identifiers (``scenario="init-relu-he"``).

    Raises
    ------
    ValueError
        a field name that is not a lower-case identifier.
    """
    fields = {
        "property": property,
        "device": device,
        "statistic": statistic,
        "bound": bound,
        "alpha": alpha,
        "seed": seed,
        "replay": replay,
        "verified": verified,
        **details,
    }
    for name, value in fields.items():
        if not _FIELD.match(name):
            raise ValueError(
                f"record_result field names must be lower-case identifiers, got {name!r}"
            )
        if value is not None:
            node.user_properties.append((PREFIX + name, _plain(value)))


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table (``|`` in cells escaped, newlines as spaces)."""

    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def append_step_summary(markdown: str, environ: Mapping[str, str] | None = None) -> bool:
    """Append ``markdown`` to the GitHub Actions step summary; False when not on Actions.

    The file is ``$GITHUB_STEP_SUMMARY`` (read from ``environ``, default
    ``os.environ``); nothing is written when the variable is unset or empty.
    """
    path = (os.environ if environ is None else environ).get(STEP_SUMMARY, "")
    if not path:
        return False
    with open(path, "a", encoding="utf-8") as summary:
        summary.write(markdown if markdown.endswith("\n") else markdown + "\n")
    return True


def write_json(path: str | os.PathLike[str], payload: Any) -> Path:
    """Write ``payload`` as indented JSON to ``path`` atomically (a temporary file, then a rename).

    Missing parent folders are created. Returns the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2, sort_keys=False)
            f.write("\n")
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def environment(config: pytest.Config) -> dict[str, Any]:
    """What the run verified on: netprops, devices, seed, and torch / Hypothesis when loaded.

    Reads torch and Hypothesis only where something else already imported them.
    """
    from .. import __version__

    env: dict[str, Any] = {
        "netprops": __version__,
        "devices": selected_devices(config),
        "seed": config.getoption("netprops_seed"),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        env["torch"] = torch.__version__
        env["cuda"] = torch.version.cuda
        env["cuda_available"] = torch.cuda.is_available()
        env["threads"] = torch.get_num_threads()
    hypothesis = sys.modules.get("hypothesis")
    current = getattr(getattr(hypothesis, "settings", None), "get_current_profile_name", None)
    if current is not None:
        env["hypothesis_profile"] = current()
    return env


def describe(env: Mapping[str, Any]) -> str:
    """One line for logs, e.g. ``netprops 0.1.0: devices=['cpu'], torch 2.4 (cuda None, available=False), ...``."""
    parts = [f"netprops {env['netprops']}: devices={env['devices']}"]
    if "torch" in env:
        parts.append(
            f"torch {env['torch']} (cuda {env['cuda']}, available={env['cuda_available']}), "
            f"threads={env['threads']}"
        )
    if "hypothesis_profile" in env:
        parts.append(f"hypothesis profile={env['hypothesis_profile']}")
    parts.append(f"seed={env['seed']} (generated tests: deterministic algorithms, TF32 off)")
    return ", ".join(parts)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    if not explicitly_used(config):
        return None
    import torch  # noqa: F401  (the run asked for netprops: name the torch it runs on)

    return [describe(environment(config))]
