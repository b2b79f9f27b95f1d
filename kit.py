#!/usr/bin/env python3
"""Set up and run the LDK events workshop. Needs nothing but Python 3.10 or later.

    python3 kit.py lab     # open the workshop in JupyterLab
    python3 kit.py test    # run every test
    python3 kit.py lite    # build a static JupyterLite site of the workshop in _site/
    python3 kit.py mutate  # mutation testing of the modules that decide verdicts (slow; not in CI)

Both create a virtual environment in .venv (once) and install the kit into it, again
only when pyproject.toml changes. Anything after the command is passed on, e.g.
``python3 kit.py test -k events`` or ``python3 kit.py lab --port 8899``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
START_PAGE = "notebooks/00_start_here.ipynb"


def say(msg: str) -> None:
    print(f"[kit] {msg}", flush=True)


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def ensure_venv_module() -> None:
    """Debian ships venv and ensurepip separately (python3-venv); install it if we can."""
    try:
        import ensurepip  # noqa: F401
        import venv  # noqa: F401

        return
    except ImportError:
        pass
    package = f"python3.{sys.version_info.minor}-venv"
    if is_root() and shutil.which("apt-get"):
        say(f"installing {package} (Python's venv module)")
        subprocess.run(["apt-get", "update", "-q"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-q", package], check=True)
        return
    sys.exit(f"[kit] Python's venv module is missing. Install it with: sudo apt-get install -y {package}")


def ensure_installed(*, meanwhile: Callable[[], None] = lambda: None) -> Path:
    """Create .venv if needed and install the kit with its lab and test extras; ``meanwhile`` (the test tools'
    installs, which need no Python packages) runs in a thread alongside, once the folder is made."""
    python = venv_python()
    if not python.exists():
        ensure_venv_module()
        import venv

        say(f"creating a virtual environment in {VENV.name}/")
        venv.create(VENV, with_pip=True, clear=True)
    stamp = VENV / ".kit-installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    with alongside(meanwhile):
        if not stamp.exists() or stamp.read_text() != wanted:
            say("installing the kit and its dependencies (under a minute the first time)")
            install(python)
            stamp.write_text(wanted)
    return python


def install(python: Path) -> None:
    """``pip install -e .[lab,test]``, by uv where it can be had: a fresh clone's install takes it seconds, where pip
    takes half a minute. Compiled as pip compiles: where PYTHONDONTWRITEBYTECODE is set, as on our machines, a module
    never compiled is compiled again by every process that imports it (every notebook's kernel, every grader's
    process), and the suite took a fifth longer. pip does it where uv cannot be installed or cannot install (an index
    only pip is set up for, no network but a local mirror)."""
    editable = ["-e", f"{ROOT}[lab,test]"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    if (subprocess.run([str(python), "-m", "pip", "install", "-q", "uv"], **quiet).returncode == 0
            and subprocess.run([str(python), "-m", "uv", "pip", "install", "-q", "--compile-bytecode", "--python",
                                str(python), *editable]).returncode == 0):
        return
    say("uv could not install the kit: installing it with pip instead")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *editable], check=True)


@contextlib.contextmanager
def alongside(work: Callable[[], None]) -> Iterator[None]:
    """Run ``work`` in a thread while the block runs; what it raised is raised here, once both are done."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as e:  # raised in the caller's thread below
            failed.append(e)

    thread = threading.Thread(target=run, name="kit-tools")
    thread.start()
    try:
        yield
    finally:
        thread.join()
    if failed:
        raise failed[0]


def lab(python: Path, args: list[str]) -> int:
    # Serve the whole kit, so lessons, workbooks and solutions are all in the file browser,
    # and open the start page.
    cmd = [
        str(python), "-m", "jupyterlab",
        f"--ServerApp.root_dir={ROOT}", f"--LabApp.default_url=/lab/tree/{START_PAGE}",
    ]
    if is_root():
        cmd.append("--allow-root")
    say("starting JupyterLab; open the link it prints, and stop it with Ctrl+C")
    return subprocess.call(cmd + args, cwd=ROOT)


def ensure_chromium() -> None:
    """Debian's Chromium, for the browser test of the dashboard (Playwright cannot download one here)."""
    if shutil.which("chromium") or Path("/usr/bin/chromium").exists():
        return
    if is_root() and shutil.which("apt-get"):
        say("installing Chromium (apt-get install chromium), for the dashboard's browser test")
        subprocess.run(["apt-get", "update", "-q"], stdout=subprocess.DEVNULL)
        if subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], stdout=subprocess.DEVNULL).returncode == 0:
            return
    say("Chromium is not installed and cannot be installed here: the browser test will be skipped")


def ensure_test_tools() -> None:
    """What the tests need beyond Python: Chromium, and configurable-http-proxy (npm) for JupyterHub."""
    ensure_chromium()
    chp = VENV / "chp" / "node_modules" / ".bin" / "configurable-http-proxy"
    if chp.exists():
        return
    if not shutil.which("npm"):
        say("npm is missing, so the JupyterHub smoke test will be skipped (install Node.js to run it)")
        return
    say("installing configurable-http-proxy with npm, for the JupyterHub smoke test")
    result = subprocess.run(["npm", "install", "--silent", "--prefix", str(VENV / "chp"), "configurable-http-proxy"])
    if result.returncode != 0:
        say("could not install configurable-http-proxy; the JupyterHub smoke test will be skipped")


def test(python: Path, args: list[str]) -> int:
    return subprocess.call([str(python), "-m", "pytest", *parallel(args), *args], cwd=ROOT)


#: Options that say how to run the tests in processes (or that need a single one): given any, the kit adds none.
_SERIAL_OR_CHOSEN = ("-n", "--numprocesses", "--dist", "--pdb", "--trace", "no:xdist")


def parallel(args: list[str]) -> list[str]:
    """Two or more CPUs: pytest-xdist's workers, one test file per worker at a time (``--dist loadfile``: a file's
    tests share their slow fixtures, a notebook its kernel). Nothing if the options choose otherwise
    (``python3 kit.py test -n 0`` runs in one process)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    chosen = any(a == o or a.startswith(f"{o}=") or (o.startswith("-n") and a.startswith("-n"))
                 for a in args for o in _SERIAL_OR_CHOSEN)
    return [] if cpus < 2 or chosen else ["-n", str(min(cpus, 4)), "--dist", "loadfile"]


def lite(python: Path, args: list[str]) -> int:
    """Build the workshop as a static JupyterLite site (see the README for what it can and cannot do)."""
    return build_site(python, ROOT / "_site", args)


def build_site(python: Path, site: Path, args: list[str]) -> int:
    from tempfile import TemporaryDirectory

    with TemporaryDirectory() as tmp:
        content, wheels = Path(tmp) / "content", Path(tmp) / "wheels"
        for folder in ("notebooks", "exercises"):
            shutil.copytree(ROOT / folder, content / folder)
        subprocess.run([str(python), "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w", str(wheels)],
                       check=True)
        say(f"building the JupyterLite site in {site.name}/")
        return subprocess.call([str(python), "-m", "jupyter", "lite", "build", "--contents", str(content),
                                "--piplite-wheels", str(next(wheels.glob("ldkkit-*.whl"))),
                                "--output-dir", str(site), *args], cwd=tmp)


def mutate(python: Path, args: list[str]) -> int:
    """Mutation testing, outside CI (slow): a score per module (tools/mutation.py)."""
    if subprocess.call([str(python), "-c", "import mutmut"], stderr=subprocess.DEVNULL) != 0:
        say("installing mutmut (mutation testing)")
        subprocess.run([str(python), "-m", "pip", "install", "-q", "mutmut>=3.3"], check=True)
    return subprocess.call([str(python), str(ROOT / "tools" / "mutation.py"), *args], cwd=ROOT)


def main(argv: list[str]) -> int:
    commands = {"lab": lab, "test": test, "lite": lite, "mutate": mutate}
    if not argv or argv[0] not in commands:
        print(__doc__)
        return 2
    if sys.version_info < (3, 10):  # noqa: UP036 - kit.py runs before anything is installed
        sys.exit(f"[kit] the workshop needs Python 3.10 or later; this is {sys.version.split()[0]}")
    # (the test tools, Chromium and configurable-http-proxy, install while the Python packages do)
    python = ensure_installed(meanwhile=ensure_test_tools if argv[0] == "test" else lambda: None)
    try:
        return commands[argv[0]](python, argv[1:])
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
