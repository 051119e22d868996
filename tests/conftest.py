"""Test configuration: simulate 8 CPU devices, and share one compilation cache among the run's workers. This must
run before jax is imported anywhere."""

import os
import shutil
import tempfile

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# JAX's persistent compilation cache, new for each run: tests that build the same program (the same tiny model
# under the same config, in another test or another xdist worker) compile it once. An entry is keyed by the
# program, the compile options and the jax version, so a hit is the executable a miss would build. The pytest
# process that starts the run makes the directory (xdist workers inherit it) and removes it at the end.
_OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ and "PYTEST_XDIST_WORKER" not in os.environ
if _OWN_CACHE:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="diffserial-jax-cache-")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def pytest_unconfigure(config):
    if _OWN_CACHE:
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


def pytest_collection_modifyitems(items):
    """Modules with a test marked `slow` first, the rest in collection order. `make test` runs pytest-xdist
    with --dist loadscope: each module on one worker, so that a module fixture (e.g. a whole study) runs once;
    a long module that started last would keep one worker busy while the other had nothing left to run."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
