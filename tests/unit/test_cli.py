"""The `netprops` console script's top level."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

import netprops
from netprops.cli import main


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"netprops {netprops.__version__}"


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "usage: netprops" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


def test_console_script_is_installed():
    exe = shutil.which("netprops") or str(
        __import__("pathlib").Path(sys.executable).with_name("netprops")
    )
    result = subprocess.run(
        [exe, "--help"], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "usage: netprops" in result.stdout


def test_baselines_show_prints_the_stored_numbers(capsys):
    assert main(["baselines", "show", "norm-none-b128"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("norm-none-b128 on cpu: 30 seeds")
    assert "final_accuracy" in out
    assert "auc_log_loss" in out
    assert out.count("[gated: rank test, detectable drop") == 2
    assert "with 3 fresh seeds, floor 0.2]" in out


def test_baselines_unknown_scenario_is_a_usage_error(capsys):
    assert main(["baselines", "compare", "no-such-scenario"]) == 2
    assert "scenario must be one of 'init-tanh-normal'" in capsys.readouterr().err


def test_baselines_bad_set_is_a_usage_error(capsys):
    assert main(["baselines", "compare", "arch-mlp", "--set", "lr"]) == 2
    assert "--set expects key=value" in capsys.readouterr().err


def test_baselines_missing_file_is_a_data_error(tmp_path, capsys):
    assert main(["baselines", "compare", "arch-mlp", "--root", str(tmp_path)]) == 2
    assert "no baseline recorded" in capsys.readouterr().err


def test_baselines_record_refuses_to_overwrite(tmp_path, capsys):
    (tmp_path / "arch-mlp.cpu.json").write_text("{}")
    assert main(["baselines", "record", "arch-mlp", "--root", str(tmp_path)]) == 2
    assert "exists; pass overwrite=True" in capsys.readouterr().err
    assert (tmp_path / "arch-mlp.cpu.json").read_text() == "{}"


def test_baselines_unknown_field_in_set_is_a_usage_error(capsys):
    assert main(["baselines", "compare", "arch-mlp", "--set", "learning_rate=1"]) == 2
    assert "unknown scenario field(s) ['learning_rate']" in capsys.readouterr().err


@pytest.mark.parametrize("seeds", ["0", "-3", "two"])
def test_baselines_seeds_must_be_positive(seeds, capsys):
    with pytest.raises(SystemExit) as info:
        main(["baselines", "compare", "arch-mlp", "--seeds", seeds])
    assert info.value.code == 2
    assert "--seeds: must be an int >= 1" in capsys.readouterr().err


def test_baselines_bad_device_is_a_usage_error(capsys):
    assert main(["baselines", "show", "arch-mlp", "--device", "gpu"]) == 2
    assert "device must be one of" in capsys.readouterr().err


def test_baselines_show_takes_no_set(capsys):
    assert main(["baselines", "show", "arch-mlp", "--set", "bogus=1"]) == 2
    assert "--set is used by record and compare" in capsys.readouterr().err


def test_baselines_bad_set_value_names_the_field(capsys):
    assert main(["baselines", "compare", "arch-mlp", "--set", 'track_grad_norms="no"']) == 2
    assert "track_grad_norms must be bool" in capsys.readouterr().err


def test_a_regression_takes_precedence_over_an_environment_change(monkeypatch, capsys):
    from netprops import baselines

    def fake_compare(scenario, **kwargs):
        changed = scenario.name == "arch-mlp"
        return baselines.Verdict(scenario.name, None if changed else False, changed, "msg")

    monkeypatch.setattr(baselines, "compare", fake_compare)
    assert main(["baselines", "compare", "arch-mlp", "arch-cnn"]) == 1
    assert main(["baselines", "compare", "arch-mlp"]) == 2


def test_baselines_accept_is_for_migrate_only(capsys):
    assert main(["baselines", "compare", "arch-mlp", "--accept"]) == 2
    assert "--accept is used by migrate, not by compare" in capsys.readouterr().err


def test_baselines_migrate_exit_status(monkeypatch, capsys):
    from netprops import baselines

    calls = []

    def fake_migrate(scenario, **kwargs):
        calls.append((scenario.name, kwargs))
        written = scenario.name == "arch-mlp" or kwargs["accept"]
        return baselines.Migration(
            scenario.name, written, written, (), (), "p", f"{scenario.name} report"
        )

    monkeypatch.setattr(baselines, "migrate", fake_migrate)
    assert main(["baselines", "migrate", "arch-mlp", "--seeds", "5"]) == 0
    assert calls[-1][1]["seeds"] == (0, 1, 2, 3, 4)
    assert main(["baselines", "migrate", "arch-mlp", "arch-cnn"]) == 1
    assert "arch-cnn report" in capsys.readouterr().out
    assert main(["baselines", "migrate", "arch-cnn", "--accept"]) == 0


def test_baselines_whatif_prints_the_table_and_fails_when_a_dead_network_passes(
    monkeypatch, capsys
):
    from netprops import baselines

    def fake_what_ifs(name, **kwargs):
        dead_caught = name != "arch-cnn"
        return {
            "lr ÷ 2": baselines.Verdict(name, True, False, "ok"),
            "lr × 1e-5 (dead)": baselines.Verdict(name, not dead_caught, False, "dead"),
        }

    monkeypatch.setattr(baselines, "what_if_verdicts", fake_what_ifs)
    assert main(["baselines", "whatif", "arch-mlp"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "| scenario | lr ÷ 2 | lr × 1e-5 (dead) |"
    assert "| arch-mlp | missed | caught |" in out
    assert main(["baselines", "whatif", "arch-mlp", "arch-cnn"]) == 1
    assert "a dead network was not caught in: arch-cnn" in capsys.readouterr().err


def test_baselines_set_takes_json_values(monkeypatch, capsys):
    from netprops import baselines

    seen = {}

    def fake_compare(scenario, **kwargs):
        seen.update(kwargs)
        return baselines.Verdict(scenario.name, True, False, "ok")

    monkeypatch.setattr(baselines, "compare", fake_compare)
    argv = ["baselines", "compare", "arch-mlp", "--set", "frozen=[0]", "--set", "label_noise=0.2"]
    assert main(argv) == 0
    assert seen["frozen"] == [0] and seen["label_noise"] == 0.2


def test_baselines_simulate_is_for_show_only(capsys):
    assert main(["baselines", "compare", "arch-mlp", "--simulate", "100"]) == 2
    assert "--simulate is used by show, not by compare" in capsys.readouterr().err


def test_compare_appends_its_verdicts_to_the_github_step_summary(monkeypatch, tmp_path, capsys):
    from netprops import baselines

    def fake_compare(scenario, **kwargs):
        return baselines.Verdict(scenario.name, True, False, f"{scenario.name}: passed")

    summary = tmp_path / "summary.md"
    monkeypatch.setattr(baselines, "compare", fake_compare)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert main(["baselines", "compare", "arch-mlp"]) == 0
    assert not summary.exists()
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert main(["baselines", "compare", "arch-mlp", "arch-cnn"]) == 0
    text = summary.read_text()
    assert text.startswith("### netprops convergence gate")
    assert "| arch-mlp | passed |" in text and "| arch-cnn | passed |" in text
