"""Study and training configs (`get_config()` files for ml_collections' config flags).

Every study config takes a scale after ":": `configs/STUDY.py` (or `configs/STUDY.py:`, `:small`) is the small
CPU default, `configs/STUDY.py:paper` the accelerator sizes; each docstring states what `:paper` changes and
its estimated time.
"""

SCALES = ("small", "paper")


def is_paper_scale(scale: str) -> bool:
    """The scale argument after ":" of a study config: "small" or "" (the CPU default) or "paper"
    (accelerator sizes); ValueError for anything else."""
    if scale not in SCALES + ("",):
        raise ValueError(f"unknown scale {scale!r}; valid: {', '.join(SCALES)}")
    return scale == "paper"
