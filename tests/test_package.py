"""The package as users import it: light, with load_run at the top."""

import os
import subprocess
import sys


def test_importing_the_package_does_not_import_torch():
    code = "import sys, autoencoders; print('torch' in sys.modules, callable(autoencoders.load_run))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.stdout.split() == ["False", "True"], done.stderr
