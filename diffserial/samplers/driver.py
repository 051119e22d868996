"""Old import path of the loop's seed-mesh helpers, kept for callers not yet moved (studies/serial_accuracy.py).
Use `diffserial.samplers` (or `diffserial.samplers.loop`) instead."""

from diffserial.samplers.loop import DEFAULT_BLOCK_SIZE, seed_mesh

__all__ = ["DEFAULT_BLOCK_SIZE", "seed_mesh"]
