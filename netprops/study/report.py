"""Write a study's report: ``report.md``, a self-contained ``report.html``, PNG figures, ``results.json``.

Both documents are rendered from the same :class:`StudyResult`, and every
number they show is in ``results.json`` (tables with their raw values, claims
with their numbers, the curves behind the figures).
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path

from .claims import SMALL_SAMPLE
from .figures import render_figures
from .results import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, Claim, StudyResult, Table

__all__ = ["REPORT_FILES", "render_html", "render_markdown", "write_report"]

#: The files :func:`write_report` always writes (plus the PNG figures).
REPORT_FILES: tuple[str, ...] = ("report.md", "report.html", "results.json")

_RULES_TEXT = (
    "Each claim is decided from this run's numbers by a rule stated next to it. Comparisons "
    'between two configurations ("A is better than B") use the per-seed values: with fewer '
    f"than {SMALL_SAMPLE} seeds a claim is *supported* only when every run of A beats every "
    "run of B by more than the stated margin; with more seeds, when the mean difference "
    "exceeds the margin and a one-sided Welch t-test gives p < 0.05. A claim is *not supported "
    "by this run* when A is not better than B on average, and *inconclusive* otherwise. "
    'Claims about a property ("the variance stays within a factor of 4") are checked on '
    "every independent sample (network or seed): *supported* when it holds in all, *not "
    "supported* when in none, *inconclusive* when they disagree. Claims made of several parts "
    "need every part."
)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write via a temporary file and ``os.replace`` (permissions follow the umask)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def _header_facts(result: StudyResult) -> list[str]:
    env, cfg = result.environment, result.config
    load = env.get("load_average_start") or []
    facts = [
        f"{cfg['name']} study, {env['started']}",
        f"data: {env['dataset']} ({env['train_images']:,} train / {env['test_images']:,} test "
        f"images, from {env['dataset_source']})",
        f"device: {env['device']} ({env['device_name']}), {env['threads']} thread(s), "
        f"{env['cpu_count']} CPU(s)",
        f"torch {env['torch']}, netprops {env['netprops']}, Python {env['python']}",
        f"took {_duration(result.elapsed_s)}"
        + (f" (load average at start {load[0]:.2f})" if load and load[0] is not None else ""),
        f"seeds: {', '.join(map(str, cfg['seeds']))}",
    ]
    return facts


def _caveat(result: StudyResult) -> str | None:
    n = len(result.config["seeds"])
    if n >= SMALL_SAMPLE:
        return None
    return (
        f"This run used {n} seed{'s' if n > 1 else ''} per configuration and short trainings: "
        "a comparison is supported only when every run of one side beats every run of the other "
        "by the margin, and there is no test of seed-to-seed noise. Run the full study "
        "(`netprops study`) before relying on a verdict."
    )


# --------------------------------------------------------------------------- markdown
def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(table: Table) -> list[str]:
    lines = [
        "| " + " | ".join(_md_escape(c) for c in table.columns) + " |",
        "|" + "|".join("---" if f == "s" else "---:" for f in table.formats) + "|",
    ]
    for row in table.formatted_rows():
        lines.append("| " + " | ".join(_md_escape(c) for c in row) + " |")
    return lines


def _md_claim(claim: Claim) -> list[str]:
    return [
        f"- **{claim.verdict}** — {claim.text}",
        f"  - Evidence: {claim.evidence}",
        f"  - Rule: {claim.rule}",
    ]


def render_markdown(result: StudyResult) -> str:
    """``report.md``: figures are referenced by file name (they sit next to it)."""
    out = ["# netprops study report", ""]
    out += [f"- {fact}" for fact in _header_facts(result)]
    out.append("")
    caveat = _caveat(result)
    if caveat:
        out += [f"> {caveat}", ""]
    claims = [(s, c) for s in result.sections for c in s.claims]
    if claims:
        counts = {
            v: sum(c.verdict == v for _, c in claims)
            for v in (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE)
        }
        out += [
            "## Claims at a glance",
            "",
            f"{counts[SUPPORTED]} supported, {counts[NOT_SUPPORTED]} not supported by this run, "
            f"{counts[INCONCLUSIVE]} inconclusive.",
            "",
            "| study | claim | verdict |",
            "|---|---|---|",
        ]
        out += [
            f"| {_md_escape(s.title.split(':')[0])} | {_md_escape(c.text)} | **{c.verdict}** |"
            for s, c in claims
        ]
        out.append("")
    for i, section in enumerate(result.sections, start=1):
        out += [f"## {i}. {section.title}", "", section.intro, ""]
        for fig in section.figures:
            out += [f"![{_md_escape(fig.caption)}]({fig.filename})", "", f"*{fig.caption}*", ""]
        for table in section.tables:
            out += [f"**{table.title}**", "", *_md_table(table), ""]
            if table.note:
                out += [f"*{table.note}*", ""]
        if section.claims:
            out += ["### Claims", ""]
            for claim in section.claims:
                out += _md_claim(claim)
            out.append("")
        if section.notes:
            out += ["### Notes", ""] + [f"- {n}" for n in section.notes] + [""]
        out += (
            [f"<sub>Section time: {_duration(section.elapsed_s)}</sub>", ""]
            if section.elapsed_s
            else []
        )
    out += ["## How the verdicts are decided", "", _RULES_TEXT, ""]
    out += [
        "## Files",
        "",
        "- `results.json`: every number in this report (tables with raw values, claims with "
        "their numbers, the curves behind the figures) and the run's configuration.",
        "- `report.html`: this report with the figures inlined.",
        "",
    ]
    return "\n".join(out)


# --------------------------------------------------------------------------- HTML
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:.5em 0 1em}th,td{border:1px solid #ccc;padding:.25em .6em}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;border:1px solid #eee}figure{margin:1em 0}figcaption{font-style:italic;color:#555}
.supported{color:#1a7f37;font-weight:bold}.not-supported{color:#cf222e;font-weight:bold}
.inconclusive{color:#9a6700;font-weight:bold}.caveat{background:#fff8c5;padding:.6em 1em;
border-left:4px solid #d4a72c}.note{color:#555;font-style:italic}
"""


def _verdict_class(verdict: str) -> str:
    return {SUPPORTED: "supported", NOT_SUPPORTED: "not-supported"}.get(verdict, "inconclusive")


def _html_table(table: Table) -> str:
    e = html.escape
    head = "".join(f"<th>{e(c)}</th>" for c in table.columns)
    body = []
    for row in table.formatted_rows():
        cells = "".join(
            f'<td class="num">{e(c)}</td>' if f != "s" else f"<td>{e(c)}</td>"
            for c, f in zip(row, table.formats, strict=True)
        )
        body.append(f"<tr>{cells}</tr>")
    note = f'<p class="note">{e(table.note)}</p>' if table.note else ""
    return f"<p><b>{e(table.title)}</b></p><table><tr>{head}</tr>{''.join(body)}</table>{note}"


def render_html(result: StudyResult, out_dir: str | Path) -> str:
    """``report.html``: self-contained, the figures from ``out_dir`` inlined as base64 PNG."""
    e = html.escape
    out_dir = Path(out_dir)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>netprops study report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>netprops study report</h1><ul>",
        *(f"<li>{e(f)}</li>" for f in _header_facts(result)),
        "</ul>",
    ]
    caveat = _caveat(result)
    if caveat:
        parts.append(f'<p class="caveat">{e(caveat)}</p>')
    claims = [(s, c) for s in result.sections for c in s.claims]
    if claims:
        parts.append(
            "<h2>Claims at a glance</h2><table><tr><th>study</th><th>claim</th><th>verdict</th></tr>"
        )
        for s, c in claims:
            parts.append(
                f"<tr><td>{e(s.title.split(':')[0])}</td><td>{e(c.text)}</td>"
                f'<td class="{_verdict_class(c.verdict)}">{e(c.verdict)}</td></tr>'
            )
        parts.append("</table>")
    for i, section in enumerate(result.sections, start=1):
        parts.append(f"<h2>{i}. {e(section.title)}</h2><p>{e(section.intro)}</p>")
        for fig in section.figures:
            data = base64.b64encode((out_dir / fig.filename).read_bytes()).decode("ascii")
            parts.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{e(fig.caption)}">'
                f"<figcaption>{e(fig.caption)}</figcaption></figure>"
            )
        parts += [_html_table(t) for t in section.tables]
        if section.claims:
            parts.append("<h3>Claims</h3><ul>")
            for c in section.claims:
                parts.append(
                    f'<li><span class="{_verdict_class(c.verdict)}">{e(c.verdict)}</span> — '
                    f"{e(c.text)}<ul><li>Evidence: {e(c.evidence)}</li><li>Rule: {e(c.rule)}</li></ul></li>"
                )
            parts.append("</ul>")
        if section.notes:
            parts.append(
                "<h3>Notes</h3><ul>" + "".join(f"<li>{e(n)}</li>" for n in section.notes) + "</ul>"
            )
    parts += [f"<h2>How the verdicts are decided</h2><p>{e(_RULES_TEXT)}</p>", "</body></html>"]
    return "\n".join(parts)


# --------------------------------------------------------------------------- files
def write_report(result: StudyResult, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write the figures, ``report.md``, ``report.html`` and ``results.json`` into ``out_dir``.

    ``out_dir`` is created if needed; files of an earlier report there are
    overwritten. Returns the paths written, by file name.

    Raises
    ------
    MissingReportDependency
        (an ImportError) when matplotlib is not installed.
    OSError
        when ``out_dir`` cannot be written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for section in result.sections:
        for ref in render_figures(section, out):
            written[ref.filename] = out / ref.filename
    _atomic_write(out / "report.md", render_markdown(result).encode("utf-8"))
    _atomic_write(out / "report.html", render_html(result, out).encode("utf-8"))
    payload = json.dumps(result.to_dict(), indent=1, allow_nan=False)
    _atomic_write(out / "results.json", payload.encode("utf-8"))
    for name in REPORT_FILES:
        written[name] = out / name
    return written
