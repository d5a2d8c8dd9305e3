"""Print the Python and library versions of this environment, under a heading (CI's log)."""

import importlib.metadata
import platform
import shutil
import subprocess
import sys

LIBRARIES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain", "tensorflow-datasets", "tensorflow",
             "tensorflow-cpu", "numpy", "chex", "safetensors", "torch", "sphinx", "myst-nb", "sphinx-book-theme",
             "playwright")

print(f"== {' '.join(sys.argv[1:]) or 'versions'}: Python {platform.python_version()}")
for name in LIBRARIES:
    try:
        print(f"   {name} {importlib.metadata.version(name)}")
    except importlib.metadata.PackageNotFoundError:
        print(f"   {name} not installed")
browser = shutil.which("chromium")
if browser:
    print(f"   {subprocess.run([browser, '--version'], capture_output=True, text=True).stdout.strip()}")
