"""load_results / load_summary / read_rows on synthetic workdirs, and examples/redraw_convergence.py."""

import importlib.util
import json
import os
import sys

import matplotlib.image
import pytest

from diffserial.studies import load_results, load_summary, read_rows

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _rows():
    """gmm_convergence-like rows: d in {1, 2}, two samplers, T in {1, 2, 4}; pf_heun costs 2 NFE a step."""
    return [{"d": d, "sampler": name, "steps": t, "nfe": t * (2 if name == "pf_heun" else 1), "tv": 0.5 / (t * d),
             "tv_floor": 0.01, "ci": [0.4 / t, 0.6 / t]}
            for d in (1, 2) for name in ("euler_maruyama", "pf_heun") for t in (1, 2, 4)]


def _workdir(tmp_path, rows, tail=""):
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + tail)
    return str(tmp_path)


def test_load_results_is_one_row_per_point_and_ignores_a_torn_last_line(tmp_path):
    rows = _rows()
    df = load_results(_workdir(tmp_path, rows, tail='{"d": 2, "sampler": "pf_he'))
    assert len(df) == len(rows) and list(df.columns) == list(rows[0])
    assert df["tv"].tolist() == [r["tv"] for r in rows]
    assert df["ci"].iloc[1] == [0.2, 0.3]  # list fields stay lists
    tv = df.pivot_table(index="steps", columns="sampler", values="tv", aggfunc="max")
    assert tv.loc[4, "pf_heun"] == 0.125
    assert read_rows(str(tmp_path)) == rows


def test_rows_missing_a_field_get_nan_and_an_empty_file_is_an_empty_frame(tmp_path):
    df = load_results(_workdir(tmp_path, [{"steps": 1, "tv": 0.5}, {"steps": 2}]))
    assert df["tv"].isna().tolist() == [False, True]
    assert load_results(_workdir(tmp_path, [])).empty


def test_errors_name_the_file_and_the_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="results.jsonl does not exist.*python sample.py --workdir"):
        load_results(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="summary.json does not exist"):
        load_summary(str(tmp_path))
    (tmp_path / "results.jsonl").write_text('{"steps": 1}\n{"steps": \n{"steps": 4}\n')
    with pytest.raises(ValueError, match="line 2, is not JSON"):
        load_results(str(tmp_path))
    (tmp_path / "results.jsonl").write_text('{"steps": 1}\n[1, 2]\n')
    with pytest.raises(ValueError, match="line 2, is not a JSON object"):
        read_rows(str(tmp_path))


def test_load_results_without_pandas_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    with pytest.raises(ImportError, match=r"diffserial\[analysis\]"):
        load_results(_workdir(tmp_path, _rows()))


def test_load_summary(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"study": "gmm_convergence", "fits": {}}))
    assert load_summary(str(tmp_path)) == {"study": "gmm_convergence", "fits": {}}


def _example():
    path = os.path.join(ROOT, "examples", "redraw_convergence.py")
    spec = importlib.util.spec_from_file_location("redraw_convergence", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("x", ["steps", "nfe"])
def test_example_redraws_a_figure_from_a_synthetic_workdir(tmp_path, x):
    workdir = _workdir(tmp_path, _rows())
    out = _example().redraw(workdir, str(tmp_path / f"{x}.png"), x=x)
    height, width, _ = matplotlib.image.imread(out).shape
    assert width > 2 * height  # two panels (d = 1, 2) side by side


def test_example_rejects_rows_without_tv(tmp_path):
    with pytest.raises(SystemExit, match="no tv field"):
        _example().redraw(_workdir(tmp_path, [{"steps": 1, "sampler": "a"}]), str(tmp_path / "x.png"))
