"""Every study config: the small default ("" or no argument after ":") and the `:paper` preset load and pass
their study's `validate` (nothing runs), and each docstring states what `:paper` costs."""

import importlib

import pytest

from diffserial.studies.runner import studies

STUDIES = ("gmm_convergence", "gmm_learned", "parity_convergence", "parity_learned", "pinball",
           "serial_accuracy", "sudoku_decoding")


def _get_config(name, *scale):
    return importlib.import_module(f"configs.{name}").get_config(*scale)


@pytest.mark.slow
@pytest.mark.parametrize("name", STUDIES)
def test_small_and_paper_presets_validate(name):
    default, empty, paper = _get_config(name), _get_config(name, ""), _get_config(name, "paper")
    assert default.to_dict() == empty.to_dict() and default.scale == "small" and paper.scale == "paper"
    assert default.study == paper.study == name and paper.to_dict() != default.to_dict()
    study = studies()[name]
    study.validate(default)
    study.validate(paper)
    doc = importlib.import_module(f"configs.{name}").__doc__
    assert f"configs/{name}.py:paper" in doc and "Expected device time of :paper" in doc
    with pytest.raises(ValueError, match="unknown scale"):
        _get_config(name, "huge")


def test_every_study_has_a_preset():
    assert sorted(STUDIES) == sorted(studies())
