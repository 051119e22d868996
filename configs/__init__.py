"""Study and training configs (`get_config()` files for ml_collections' config flags)."""

SCALES = ("small", "paper")


def is_paper_scale(scale: str) -> bool:
    """The scale argument after ":" of a study config: "small" (the CPU default) or "paper" (accelerator
    sizes); ValueError for anything else."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; valid: {', '.join(SCALES)}")
    return scale == "paper"
