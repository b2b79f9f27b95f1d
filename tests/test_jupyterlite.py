"""`python3 kit.py lite` builds a static JupyterLite site with the workshop and the ldkkit wheel.

The site cannot run here: its Python (Pyodide) is fetched from a CDN at run time, and this
machine has no internet. So this checks the build, as CI can.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_lite_site_builds_with_the_notebooks_and_the_wheel(tmp_path):
    spec = importlib.util.spec_from_file_location("kit", ROOT / "kit.py")
    kit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kit)
    site = tmp_path / "site"
    assert kit.build_site(Path(sys.executable), site, []) == 0
    assert (site / "index.html").exists()
    assert list(site.glob("pypi/ldkkit-*.whl"))
    assert (site / "files" / "notebooks" / "00_start_here.ipynb").exists()
    assert (site / "files" / "exercises" / "01_open_channel_request.ipynb").exists()
