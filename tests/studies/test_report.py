"""report.guide_anchor (where the slope guides of the convergence plots are pinned) and plot_loglog."""

import matplotlib.image

from diffserial.studies import report


def test_guide_anchor_is_the_median_resolved_point_at_the_middle_resolved_step_count():
    points = [(1, 0.9), (2, 0.5), (4, 0.2), (8, 0.05), (16, 0.011),  # one curve, reaching the floor at 16
              (1, 0.8), (2, 0.3), (4, 0.08), (8, 0.02), (16, 0.01),
              (1, 0.7), (2, 0.6), (4, 0.4), (8, 0.3), (16, 0.2)]
    # floor 0.01: resolved means y > 0.03; resolved step counts 1, 2, 4, 8, 16 -> 4, where y = 0.08, 0.2, 0.4
    assert report.guide_anchor(points, floor=0.01) == (4, 0.2)
    assert report.guide_anchor(points, floor=0.1) == (2, 0.5)  # y > 0.3 at 1, 2, 4 -> 2: 0.5, 0.6 -> 0.5
    assert report.guide_anchor(points) == (4, 0.2)
    assert report.guide_anchor(points, floor=1.0) is None  # nothing above 3x the floor: no guides


def test_plot_loglog_with_floor_reference_styles_and_guides(tmp_path):
    rows = [{"steps": t, "tv": 1 / t, "tv_lo": 0.8 / t, "tv_hi": 1.2 / t, "tv_floor": 0.01,
             "tv_closed_form": 1.1 / t} for t in (1, 2, 4, 8, 16)]
    path = str(tmp_path / "p.png")
    report.plot_loglog(path, {"a": {"x": rows, "y": rows[:3]}, "b": {"x": rows}}, reference="tv_closed_form",
                       styles={"y": {"ls": "--", "color": "k"}}, ylabel="TV", title="t")
    height, width, _ = matplotlib.image.imread(path).shape
    assert width > height
