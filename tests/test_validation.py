"""diffserial.validation: one wording for every argument check (name, expectation, value)."""

import numpy as np
import pytest

from diffserial import validation as v
from diffserial.processes.gaussian import VEGeometric, VPLinear


def test_check_int_accepts_python_and_numpy_integers_only():
    assert v.check_int("n", 3, 1) == 3 and type(v.check_int("n", np.int64(3), 1)) is int
    assert v.check_int("seed", -5) == -5 and v.check_int("k", 4, 0, 4) == 4
    for bad in (True, np.bool_(True), 2.0, "2", None):
        with pytest.raises(ValueError, match="n must be an int >= 1; got"):
            v.check_int("n", bad, 1)
    with pytest.raises(ValueError, match=r"k must be an int in 0\.\.4; got 5"):
        v.check_int("k", 5, 0, 4)
    with pytest.raises(ValueError, match=r"k must be an int <= 4; got 5"):
        v.check_int("k", 5, maximum=4)
    with pytest.raises(ValueError, match=r"mask_id must be an int >= 1 \(the vocabulary size V\); got 0"):
        v.check_positive_int("mask_id", 0, note=" (the vocabulary size V)")


def test_check_ints_choice_and_open_unit():
    assert v.check_ints("config.rounds", (1, 2), 1, 81) == (1, 2) and v.check_ints("config.seed", 0, 0) == (0,)
    with pytest.raises(ValueError, match=r"config.rounds must be an int \(or a non-empty tuple of ints\) in 1\.\.81"):
        v.check_ints("config.rounds", (1, 82), 1, 81)
    with pytest.raises(ValueError, match="non-empty"):
        v.check_ints("config.rounds", (), 1)
    assert v.check_choice("rule", "a", ("a", "b")) == "a"
    with pytest.raises(ValueError, match=r"rule must be one of \('a', 'b'\); got 'c'"):
        v.check_choice("rule", "c", ("a", "b"))
    assert v.check_open_unit("confidence", 0.95) == 0.95
    for bad in (0.0, 1.0, float("nan"), True, "0.5"):
        with pytest.raises(ValueError, match=r"confidence must be a number in \(0, 1\)"):
            v.check_open_unit("confidence", bad)


def test_check_variance_preserving():
    class NeedsVP:
        requires_variance_preserving = True

    class NoRequirement:
        requires_variance_preserving = False

    v.check_variance_preserving(NeedsVP(), VPLinear())
    v.check_variance_preserving(NoRequirement(), VEGeometric())  # no requirement declared
    with pytest.raises(ValueError, match="sampler NeedsVP needs a variance-preserving process .* got VEGeometric"):
        v.check_variance_preserving(NeedsVP(), VEGeometric())
    with pytest.raises(ValueError, match="sampler ddim needs a variance-preserving process .* got ve_geometric"):
        v.check_variance_preserving(NeedsVP(), VEGeometric(), "ddim", "ve_geometric")


def test_check_real_interval_ends():
    assert v.check_real("eta", 1, 0.0, 1.0) == 1.0 and type(v.check_real("eta", np.float32(0.5), 0.0, 1.0)) is float
    assert v.check_real("A", 1e9, 0.0) == 1e9
    with pytest.raises(ValueError, match=r"t_on must be a number in \(0.0, 1.0\]; got 0.0"):
        v.check_real("t_on", 0.0, 0.0, 1.0, low_open=True)
    with pytest.raises(ValueError, match=r"A must be a number in \[0.0, inf\); got -1"):
        v.check_real("A", -1, 0.0)
    for bad in (True, float("inf"), float("nan"), "0.5", None):
        with pytest.raises(ValueError, match=r"eta must be a number in \[0.0, 1.0\]"):
            v.check_real("eta", bad, 0.0, 1.0)
