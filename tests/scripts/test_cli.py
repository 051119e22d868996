"""sample.py / train.py conventions: --list, and one-line errors for configs that cannot load (these exit
during flag parsing, before JAX runs anything)."""

import os
import subprocess
import sys

import pytest

from configs import cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = os.path.join(ROOT, "configs")
STUDIES = ("gmm_convergence", "gmm_learned", "parity_convergence", "parity_learned", "pinball", "serial_accuracy",
           "sudoku_decoding")
TRAINING = ("gmm_train", "parity_train", "serial_train")


def _run(script, *args):
    return subprocess.run([sys.executable, os.path.join(ROOT, script), *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


@pytest.mark.parametrize("script, names", [("sample.py", STUDIES), ("train.py", TRAINING)])
def test_list_shows_each_config_with_its_description(script, names):
    out = _run(script, "--list")
    assert out.returncode == 0, out.stderr
    for name in names:
        assert f"configs/{name}.py" in out.stdout
        assert cli.describe(os.path.join(CONFIGS, f"{name}.py")).split()[0] in out.stdout
    assert len([line for line in out.stdout.splitlines() if line.startswith("  configs/")]) == len(names)


@pytest.mark.parametrize("script, args, message", [
    ("sample.py", ["--config.nosuchkey=1"], "--config: unknown config field 'nosuchkey'"),
    ("sample.py", ["--config=configs/nope.py", "--config.n_seeds=2"],
     "--config: [Errno 2] No such file or directory: 'configs/nope.py'"),
    ("train.py", ["--config=configs/gmm_train.py", "--workdir=unused", "--config.nosuchkey=1"],
     "--config: unknown config field 'nosuchkey'"),
    ("train.py", ["--workdir=unused"], "--config is required (--list shows the configs)"),
])
def test_config_errors_are_one_line_usage_errors(script, args, message):
    out = _run(script, *args)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [f"FATAL Flags parsing error: {message}",
                                       "Pass --helpshort or --helpfull to see help on flags."]


def test_config_error_messages():
    did_you_mean = AttributeError(KeyError("'n_seed'\nDid you mean \"n_seeds\" instead of \"n_seed\"?"))
    assert cli.config_error_message(did_you_mean) == (
        "--config: unknown config field 'n_seed' (Did you mean \"n_seeds\" instead of \"n_seed\"?)")
    traceback = ValueError("flag --config=c.py:paper: Error whilst parsing config file:\n\nTraceback ...\n"
                           "  File ...\nTypeError: get_config() takes 0 positional arguments but 1 was given")
    assert cli.config_error_message(traceback) == (
        "flag --config=c.py:paper: Error whilst parsing config file: TypeError: get_config() takes 0 positional "
        "arguments but 1 was given")


def test_list_configs_describes_get_config_files_by_their_first_docstring_paragraph(tmp_path):
    (tmp_path / "a_train.py").write_text('"""Train a\n   model.\n\nDetails."""\ndef get_config(): pass\n')
    (tmp_path / "b.py").write_text("def get_config(arg='small'): pass\n")
    (tmp_path / "helpers.py").write_text('"""Not a config."""\n')
    assert cli.describe(str(tmp_path / "a_train.py")) == "Train a model."
    assert cli.list_configs(str(tmp_path), training=True).splitlines()[1].split() == [
        f"{tmp_path.name}/a_train.py", "Train", "a", "model."]
    studies = cli.list_configs(str(tmp_path), training=False).splitlines()
    assert studies[1:] == [f"  {tmp_path.name}/b.py  (no docstring)"]
