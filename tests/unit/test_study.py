"""The study report: a tiny study end to end, the verdict rules, and the CLI subcommand."""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import pytest
import torch
from PIL import Image
from scipy import stats

import netprops.data
from netprops.data import synthetic_dataset
from netprops.monitor import Monitor, MonitorReport
from netprops.scenarios import get, run_scenario
from netprops.study import (
    INCONCLUSIVE,
    NOT_SUPPORTED,
    QUICK,
    REPORT_FILES,
    STUDIES,
    SUPPORTED,
    VERDICTS,
    Claim,
    StudyConfig,
    Table,
    add_study_parser,
    combine,
    compare_runs,
    every_sample,
    run_study,
    train_run,
    write_report,
)
from netprops.study.results import format_cell

# A study small enough for a unit test (a few seconds), with the QUICK shape otherwise.
TINY = QUICK.replace(
    name="tiny",
    profile_networks=2,
    profile_batch=64,
    init_steps=3,
    reg_steps=2,
    norm_steps={1: 2, 4: 2, 32: 2, 128: 2},
    depth_steps=2,
    arch_steps=2,
    arch_batch_size=8,
    test_subset=64,
    conv_test_subset=32,
    evals=1,
    infer_images=16,
)
EXPECTED_CLAIMS = {
    "init": 5,
    "regularization": 3,
    "normalization": 3,
    "depth": 2,
    "architecture": 3,
}


def _data(device: str = "cpu"):
    return synthetic_dataset(n_train=1200, n_test=128, seed=0, device=device)


@pytest.fixture(scope="module")
def study_report(tmp_path_factory):
    """``report(device) -> (out_dir, results_dict)``, one tiny study per device, cached."""
    cache: dict[str, tuple[Path, dict]] = {}

    def report(device: str) -> tuple[Path, dict]:
        if device not in cache:
            rng_before = torch.random.get_rng_state()
            threads = torch.get_num_threads()
            # One thread: tiny batches gain nothing from two, and lose a lot when the
            # test machine is shared (threads wait for each other).
            torch.set_num_threads(1)
            try:
                result = run_study(_data(device), config=TINY, device=device)
            finally:
                torch.set_num_threads(threads)
            assert torch.equal(rng_before, torch.random.get_rng_state()), (
                "the study drew from torch's global RNG"
            )
            out = tmp_path_factory.mktemp(f"study-{device}")
            write_report(result, out)
            cache[device] = (out, json.loads((out / "results.json").read_text()))
        return cache[device]

    return report


# --------------------------------------------------------------------------- the report files
def test_report_files_exist(study_report, device):
    out, results = study_report(device)
    for name in REPORT_FILES:
        assert (out / name).is_file(), name
    figures = [f["file"] for s in results["sections"] for f in s["figures"]]
    assert (
        len(figures) == 7
    )  # init ×2, regularization, normalization, depth, architecture, confusion
    for name in figures:
        assert (out / name).is_file(), name
    assert [s["name"] for s in results["sections"]] == [*STUDIES, "confusion", "diagnostics"]


def test_figures_are_valid_pngs_with_content(study_report, device):
    out, results = study_report(device)
    for section in results["sections"]:
        for fig in section["figures"]:
            path = out / fig["file"]
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
            with Image.open(path) as image:
                image.verify()
            with Image.open(path) as image:
                width, height = image.size
                assert width >= 500 and height >= 300, (path, image.size)
                histogram = image.convert("L").histogram()  # pixel count per gray level
            non_white = sum(histogram[:250]) / sum(histogram)
            assert non_white > 0.02, f"{path} is nearly blank ({non_white:.1%} non-white)"
            assert sum(c > 0 for c in histogram) > 20, f"{path} has almost no distinct shades"


def _md_table(markdown: str, title: str) -> list[list[str]]:
    """Rows (as cell strings) of the markdown table under the bold ``title`` line."""
    lines = markdown.splitlines()
    start = lines.index(f"**{title}**") + 2
    assert lines[start].startswith("| ") and set(lines[start + 1]) <= set("|-: ")
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip().replace("\\|", "|") for c in line.strip("|").split(" | ")])
    return rows


def _agrees(shown: str, raw, fmt: str) -> bool:
    """Does the displayed ``shown`` cell render the raw JSON value ``raw`` in format ``fmt``?"""
    if raw is None:
        return shown == "—"
    if isinstance(raw, str) or fmt == "s":
        return shown == str(raw)
    value = float(shown.replace(",", ""))
    if fmt == "d":
        return value == raw
    decimals = re.fullmatch(r"\.(\d+)([fg])", fmt)
    assert decimals, fmt
    digits, kind = int(decimals.group(1)), decimals.group(2)
    if kind == "f":
        return abs(value - raw) <= 0.5 * 10.0**-digits + 1e-12
    return math.isclose(
        value, raw, rel_tol=0.5 * 10.0 ** -(max(digits, 1) - 1) + 1e-12, abs_tol=1e-300
    )


def test_results_json_matches_report_tables(study_report, device):
    out, results = study_report(device)
    markdown = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    tables = [t for s in results["sections"] for t in s["tables"]]
    diagnostics = [t["key"] for t in results["sections"][-1]["tables"]]
    assert diagnostics[0] == "diagnostics-runs" and len(tables) == 7 + len(diagnostics)
    for table in tables:
        rows = _md_table(markdown, table["title"])
        assert len(rows) == len(table["rows"]), table["key"]
        for shown_row, raw_row in zip(rows, table["rows"], strict=True):
            assert len(shown_row) == len(raw_row)
            for shown, raw, fmt in zip(shown_row, raw_row, table["formats"], strict=True):
                assert _agrees(shown, raw, fmt), (table["key"], shown, raw, fmt)
        assert f"<b>{table['title']}</b>" in html.replace("&#x27;", "'")


def test_every_claim_has_a_computed_verdict_in_the_report(study_report, device):
    out, results = study_report(device)
    markdown = (out / "report.md").read_text()
    for section in results["sections"]:
        claims = section["claims"]
        assert len(claims) == EXPECTED_CLAIMS.get(section["name"], 0), section["name"]
        for claim in claims:
            assert claim["verdict"] in VERDICTS
            assert claim["rule"] and claim["evidence"]
            assert f"- **{claim['verdict']}** — {claim['text']}" in markdown
            assert f"  - Evidence: {claim['evidence']}" in markdown
    # fewer than 3 seeds: the report says that the verdicts do not test seed-to-seed noise
    assert "no test of seed-to-seed noise" in markdown


def test_batchnorm_at_batch_size_1_is_reported_not_raised(study_report, device):
    _, results = study_report(device)
    section = next(s for s in results["sections"] if s["name"] == "normalization")
    table = section["tables"][0]
    batchnorm = next(r for r in table["rows"] if r[0] == "BatchNorm")
    assert batchnorm[1] == "cannot train"
    assert all(isinstance(v, float) for v in batchnorm[2:])
    claim = next(c for c in section["claims"] if c["key"] == "normalization.batchnorm-batch1")
    assert claim["verdict"] == SUPPORTED
    assert "Expected more than 1 value per channel" in claim["evidence"]


def test_html_report_is_self_contained(study_report, device):
    out, results = study_report(device)
    html = (out / "report.html").read_text()
    sources = re.findall(r'src="([^"]*)"', html)
    n_figures = sum(len(s["figures"]) for s in results["sections"])
    assert len(sources) == n_figures
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<link" not in html


def test_confusion_matrix_counts_the_test_set(study_report, device):
    _, results = study_report(device)
    section = next(s for s in results["sections"] if s["name"] == "confusion")
    matrix = section["data"]["matrix"]
    total = sum(map(sum, matrix))
    assert total in (TINY.test_subset, TINY.conv_test_subset)
    assert section["data"]["accuracy"] == pytest.approx(
        sum(matrix[i][i] for i in range(10)) / total
    )


def test_diagnostics_cover_every_training_with_what_the_monitor_saw(study_report, device):
    out, results = study_report(device)
    section = results["sections"][-1]
    assert section["name"] == "diagnostics" and section["data"]["every"] == TINY.monitor_every
    runs_table = section["tables"][0]
    trained = [
        (row[1], row[2]) for row in runs_table["rows"] if row[4] != "cannot train"
    ]  # (scenario, seed) of every training that ran
    assert len(trained) == len(set(trained)) == len(section["data"]["runs"])
    cannot = [row for row in runs_table["rows"] if row[4] == "cannot train"]
    assert {row[1] for row in cannot} == {"norm-batch-b1"}  # BatchNorm at batch size 1
    for entry in section["data"]["runs"]:
        report = MonitorReport.from_dict(entry["monitor"])
        assert report.steps[0] == 0 and (entry["scenario"], entry["seed"]) in trained
    # N(0, 1) weights into 500 tanh units: saturated from the first step, on every seed
    saturated = {
        row[1]
        for row in section["tables"][1]["rows"]
        if (row[0], row[2], row[3]) == ("init-tanh-normal", "saturation", 0)
    }
    assert saturated == set(TINY.seeds)
    markdown = (out / "report.md").read_text()
    assert "Diagnostics: what the live training monitor saw" in markdown
    assert "init-tanh-normal: saturation in hidden1.act from step 0 (seeds 0, 1)" in markdown


def test_no_monitor_no_diagnostics():
    result = run_study(_data(), config=TINY.replace(monitor_every=None), only=["depth"])
    assert [s.name for s in result.sections] == ["depth", "confusion"]


# --------------------------------------------------------------------------- engine equivalence
@pytest.mark.parametrize("name", ["init-relu-he", "reg-dropout"])
def test_train_run_matches_run_scenario(name):
    data = _data()
    scenario = get(name).replace(steps=4, eval_every=2, test_subset=64, train_subset=None)
    if name == "reg-dropout":
        scenario = scenario.replace(train_subset=300)
    expected = run_scenario(scenario, 3, data=data)
    got = train_run(scenario, 3, data, monitor=Monitor(every=1))  # monitoring only reads
    # the monitor watches the main phase, not the cool-down that follows it
    main_steps = scenario.steps - scenario.cooldown_steps
    assert main_steps >= 2
    assert got.history.monitor is not None
    assert got.history.monitor.steps == tuple(range(main_steps))
    assert expected.history.monitor is None
    assert got.metrics["final_accuracy"] == expected.metrics["final_accuracy"]
    assert got.metrics["auc_log_loss"] == expected.metrics["auc_log_loss"]
    assert got.history.train_loss == expected.history.train_loss
    for key in ("train_accuracy", "train_test_gap"):
        assert got.metrics.get(key) == expected.metrics.get(key)
    assert got.model is not None and len(got.test) == 64


# --------------------------------------------------------------------------- verdict rules
def test_compare_runs_small_samples_need_every_run_to_win():
    assert compare_runs([0.9], [0.8], margin=0.02).verdict == SUPPORTED
    assert compare_runs([0.81], [0.8], margin=0.02).verdict == INCONCLUSIVE
    assert compare_runs([0.8], [0.8], margin=0.0).verdict == NOT_SUPPORTED
    assert compare_runs([0.7], [0.8], margin=0.02).verdict == NOT_SUPPORTED
    # means differ by more than the margin but the runs overlap
    assert compare_runs([0.95, 0.79], [0.8, 0.78], margin=0.02).verdict == INCONCLUSIVE
    # lower is better
    assert compare_runs([0.05], [0.2], margin=0.02, higher_is_better=False).verdict == SUPPORTED
    c = compare_runs([0.2], [0.05], margin=0.02, higher_is_better=False)
    assert c.verdict == NOT_SUPPORTED and c.diff == pytest.approx(-0.15)
    assert c.p_value is None


def test_compare_runs_uses_welch_t_test_from_three_seeds():
    a, b = [0.85, 0.86, 0.84, 0.87], [0.80, 0.82, 0.81]
    c = compare_runs(a, b, margin=0.01, names=("new", "old"))
    # H0: the advantage is at most the margin, so A is shifted back by it
    shifted = [x - 0.01 for x in a]
    reference = stats.ttest_ind(shifted, b, equal_var=False, alternative="greater").pvalue
    assert c.p_value == pytest.approx(reference)
    assert c.verdict == SUPPORTED and "new" in c.rule and "Welch" in c.rule
    # better on average, but not by the margin: never "supported"
    near = compare_runs([0.820, 0.821, 0.822, 0.823], [0.799, 0.800, 0.801], margin=0.02)
    assert near.diff > 0.02 and near.p_value > 0.05 and near.verdict == INCONCLUSIVE
    noisy = compare_runs([0.9, 0.7, 0.85], [0.8, 0.75, 0.78], margin=0.01)
    assert noisy.diff > 0.01 and noisy.p_value > 0.05 and noisy.verdict == INCONCLUSIVE
    # identical constant samples: no NaN p-value
    assert compare_runs([0.5] * 3, [0.5] * 3, margin=0.0).verdict == NOT_SUPPORTED


@pytest.mark.parametrize(
    ("a", "b", "kwargs", "error"),
    [
        ([], [0.1], {"margin": 0.0}, ValueError),
        ([math.nan], [0.1], {"margin": 0.0}, ValueError),
        ([0.1], [0.1], {"margin": -0.1}, ValueError),
        ([0.1], [0.1], {"margin": 0.0, "alpha": 0.0}, ValueError),
        ([0.1], [0.1], {"margin": 0.0, "alpha": 1.5}, ValueError),
        (0.1, [0.1], {"margin": 0.0}, TypeError),
        ([0.1], [0.1], {"margin": 0.0, "higher_is_better": 1}, TypeError),
    ],
)
def test_compare_runs_rejects_bad_arguments(a, b, kwargs, error):
    with pytest.raises(error):
        compare_runs(a, b, **kwargs)


def test_every_sample_and_combine():
    assert every_sample([True, True]) == SUPPORTED
    assert every_sample([False, False]) == NOT_SUPPORTED
    assert every_sample([True, False]) == INCONCLUSIVE
    assert combine([SUPPORTED, SUPPORTED]) == SUPPORTED
    assert combine([SUPPORTED, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine([INCONCLUSIVE, NOT_SUPPORTED]) == NOT_SUPPORTED
    with pytest.raises(ValueError, match="holds"):
        every_sample([])
    with pytest.raises(ValueError, match="verdicts"):
        combine([])


def test_claim_and_table_validate():
    with pytest.raises(ValueError, match="verdict"):
        Claim("k", "text", "rule", "probably", "evidence")
    with pytest.raises(ValueError, match="formats"):
        Table("t", "title", ("a", "b"), ("s",), ())
    with pytest.raises(ValueError, match="cells"):
        Table("t", "title", ("a", "b"), ("s", "d"), (("x",),))


@pytest.mark.parametrize(
    ("value", "fmt", "shown"),
    [
        (None, ".4f", "—"),
        (math.nan, ".4f", "—"),
        ("cannot train", ".4f", "cannot train"),
        (0.81234, ".4f", "0.8123"),
        (453710, "d", "453,710"),
        (1.93e5, ".3g", "1.93e+05"),
    ],
)
def test_format_cell(value, fmt, shown):
    assert format_cell(value, fmt) == shown


# --------------------------------------------------------------------------- configuration
@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        ({"seeds": ()}, ValueError, "seeds"),
        ({"seeds": (0, 0)}, ValueError, "seeds"),
        ({"seeds": [0]}, TypeError, "seeds"),
        ({"seeds": (-1,)}, ValueError, "seeds"),
        ({"init_steps": 0}, ValueError, "init_steps"),
        ({"test_subset": 0}, ValueError, "test_subset"),
        ({"norm_steps": {1: 3, 4: 3}}, ValueError, "norm_steps"),
        ({"norm_steps": {1: 3, 4: 3, 32: 3, 128: 0}}, ValueError, "norm_steps"),
        ({"accuracy_margin": -0.1}, ValueError, "accuracy_margin"),
        ({"monitor_every": 0}, ValueError, "monitor_every"),
        ({"nonsense": 1}, ValueError, "unknown config field"),
    ],
)
def test_study_config_validates(overrides, error, match):
    with pytest.raises(error, match=match):
        QUICK.replace(**overrides)


def test_run_study_rejects_unknown_studies_and_other_data():
    with pytest.raises(ValueError, match="only must name studies"):
        run_study(_data(), config=TINY, only=["init", "nonsense"])
    cifar_like = synthetic_dataset(n_train=32, n_test=16, image_shape=(3, 32, 32))
    with pytest.raises(ValueError, match="1×28×28"):
        run_study(cifar_like, config=TINY)
    with pytest.raises(TypeError, match="config"):
        run_study(_data(), config={"name": "quick"})


def test_quick_and_full_configs_are_consistent():
    assert isinstance(QUICK, StudyConfig) and len(QUICK.seeds) < 3
    from netprops.study import FULL

    assert len(FULL.seeds) >= 3  # the full study decides by t-test
    for field in ("init_steps", "reg_steps", "depth_steps", "arch_steps", "profile_networks"):
        assert getattr(FULL, field) > getattr(QUICK, field), field


# --------------------------------------------------------------------------- CLI
@pytest.fixture
def keep_threads():
    """The study command sets torch's thread count (process-wide): restore it."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="netprops")
    add_study_parser(parser.add_subparsers(dest="command"))
    return parser


def test_cli_parses_the_study_options(tmp_path):
    args = _parser().parse_args(
        ["study", "--quick", "--device", "cpu", "--out", str(tmp_path), "--only", "init", "depth"]
    )
    assert args.quick and args.device == "cpu" and args.out == str(tmp_path)
    assert args.only == ["init", "depth"] and callable(args.func)
    defaults = _parser().parse_args(["study"])
    assert defaults.out == "netprops-report" and not defaults.quick and defaults.only is None
    assert defaults.threads == 1 and defaults.device == "cpu" and not defaults.no_download


def test_cli_rejects_unknown_study(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(["study", "--only", "nonsense"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_cli_missing_data_fails_with_the_fix_command(tmp_path, keep_threads, monkeypatch, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("NETPROPS_DATA", str(empty))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(netprops.data, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    out = tmp_path / "report"
    args = _parser().parse_args(["study", "--quick", "--no-download", "--out", str(out)])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert "fashion-mnist not found" in err
    assert "apt-get install dataset-fashion-mnist" in err
    assert "NETPROPS_DATA" in err
    assert not out.exists()


def test_cli_unwritable_out_is_a_usage_error(tmp_path, keep_threads, monkeypatch, capsys):
    monkeypatch.setattr("netprops.study.command.load_dataset", lambda *a, **k: _data())
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    args = _parser().parse_args(["study", "--quick", "--out", str(blocker / "report")])
    assert args.func(args) == 2
    assert "cannot create --out" in capsys.readouterr().err


def test_cli_rejects_bad_threads(capsys):
    args = _parser().parse_args(["study", "--threads", "0"])
    assert args.func(args) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err


def test_cli_writes_the_report(tmp_path, keep_threads, monkeypatch, capsys):
    monkeypatch.setattr("netprops.study.command.load_dataset", lambda *a, **k: _data())
    monkeypatch.setattr("netprops.study.command.QUICK", TINY)
    out = tmp_path / "report"
    args = _parser().parse_args(["study", "--quick", "--only", "regularization", "--out", str(out)])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert [s["name"] for s in results["sections"]] == [
        "regularization",
        "confusion",
        "diagnostics",
    ]
    assert results["config"]["name"] == "tiny"
    for claim in results["sections"][0]["claims"]:
        assert f"[{claim['verdict']}] {claim['text']}" in printed
    assert str(out / "report.html") in printed
