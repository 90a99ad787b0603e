#!/usr/bin/env python3
"""Developer entry point for kenomill: ``python3 dev.py run`` and ``python3 dev.py test``.

Standard library only, so that a fresh machine with nothing but Python >= 3.11 and pip
can run it from any directory:

* ``python3 dev.py run``  -- make ``.venv`` (if missing), install kenomill with its test
  extras (only when needed), then run the main job (:data:`MAIN_JOB`).
* ``python3 dev.py test`` -- same install, then the whole suite: pytest over tests/ and
  benchmarks/ (benchmarks run once as tests), the kernel tests again as plain Python with
  ``NUMBA_DISABLE_JIT=1``, and the notebooks with nbmake when there are any. One summary
  line per step; the exit status is non-zero if any step fails.
* ``python3 dev.py lint`` -- ruff check, ruff format --check and mypy on the public API
  (the modules listed under ``[tool.mypy]`` in pyproject.toml).

Installing is skipped when ``.venv/.kenomill-install-stamp`` records the same
pyproject.toml content, repository path and interpreter as now: a hash, not a
modification time, because ``git clone`` and ``git checkout`` reset modification times.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

#: the main job, as argument lists run in order inside the virtual environment.
#: The calibration to the packaged quarters, with its model-comparison table (issue 4).
MAIN_JOB: list[list[str]] = [
    ["kenomill", "calibrate", "--out", "kenomill_calibration"],
]

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".kenomill-install-stamp"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
MIN_PYTHON = (3, 11)
#: pytest exit code "no tests were collected": always a failure here, never hidden
PYTEST_NO_TESTS = 5


def _say(msg: str) -> None:
    print(f"[dev.py] {msg}", flush=True)


def _stamp_text() -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    return f"pyproject-sha256={digest}\nroot={ROOT}\npython={sys.version.split()[0]}\n"


def _run(cmd: list[str], env: dict[str, str] | None = None) -> int:
    """Run ``cmd`` from the repository root, streaming its output; return its exit status."""
    _say("$ " + " ".join(cmd))
    sys.stdout.flush()
    return subprocess.call(cmd, cwd=ROOT, env=env)


def ensure_env() -> None:
    """Create .venv with the caller's interpreter and install kenomill[test] if out of date."""
    if sys.version_info < MIN_PYTHON:
        sys.exit(
            f"dev.py: Python {'.'.join(map(str, MIN_PYTHON))} or newer is required; "
            f"found {sys.version.split()[0]} at {sys.executable}"
        )
    if not PY.exists():
        _say(f"creating {VENV} with {sys.executable}")
        if _run([sys.executable, "-m", "venv", str(VENV)]) != 0:
            sys.exit("dev.py: could not create the virtual environment (is the venv module installed?)")
        STAMP.unlink(missing_ok=True)
    want = _stamp_text()
    if STAMP.exists() and STAMP.read_text() == want:
        _say("environment up to date (pyproject.toml unchanged since the last install)")
    else:
        _say('installing kenomill with its test extras: pip install -e ".[test]"')
        if _run([str(PY), "-m", "pip", "install", "-e", ".[test]"]) != 0:
            STAMP.unlink(missing_ok=True)
            sys.exit("dev.py: pip install failed (see above)")
        STAMP.write_text(want)
    ensure_kernels()


def kernels_cached() -> bool:
    """Whether numba's on-disk cache holds the Monte Carlo and circuit kernels (as
    ``kenomill.cli.simulate._kernels_cached``; beside the package, or under NUMBA_CACHE_DIR)."""
    cache = os.environ.get("NUMBA_CACHE_DIR")
    where = Path(cache) if cache else ROOT / "kenomill" / "__pycache__"
    names = ("_mc_kernels.simulate-*.nbi", "_kernels.circuit_forward-*.nbi")
    return all(any(where.glob("**/" + n)) for n in names)


def ensure_kernels() -> None:
    """Compile the numba kernels once, right after installing, with a line saying so
    (``kenomill warmup``), so that the first run does not wait for them silently."""
    if kernels_cached():
        return
    _say("compiling the simulation kernels once per install (numba's cache), about 1-2 min")
    t0 = time.perf_counter()
    rc = _run(_venv_cmd(["kenomill", "warmup"]), env=_venv_env())
    if rc != 0:
        sys.exit(f"dev.py: compiling the kernels failed ({rc}; see above)")
    _say(f"kernels compiled in {time.perf_counter() - t0:.0f} s")


def _venv_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(BIN) + os.pathsep + env.get("PATH", "")
    env["VIRTUAL_ENV"] = str(VENV)
    env.pop("PYTHONHOME", None)
    env.update(extra)
    return env


def _venv_cmd(argv: list[str]) -> list[str]:
    # console scripts of the venv, found in BIN rather than on the caller's PATH
    exe = BIN / (argv[0] + (".exe" if os.name == "nt" else ""))
    return [str(exe), *argv[1:]] if exe.exists() else argv


def cmd_run() -> int:
    ensure_env()
    for argv in MAIN_JOB:
        rc = _run(_venv_cmd(argv), env=_venv_env())
        if rc != 0:
            _say(f"FAILED ({rc}): {' '.join(argv)}")
            return rc
    return 0


def _pytest(args: list[str]) -> list[str]:
    return [str(PY), "-m", "pytest", *args]


def test_steps() -> list[tuple[str, list[str] | None, dict[str, str]]]:
    """The steps of ``dev.py test``: (name, command or None to skip, extra environment)."""
    suite_dirs = [d for d in ("tests", "benchmarks") if (ROOT / d).is_dir()]
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    return [
        ("suite", _pytest([*suite_dirs, "--benchmark-disable"]), {}),
        # the kernels as plain Python: checks them without compilation and lets coverage
        # see inside them; tests/conftest.py marks every test of tests/test_kernels.py `kernel`
        (
            "kernels with NUMBA_DISABLE_JIT=1",
            _pytest([*suite_dirs, "-m", "kernel", "--benchmark-disable"]),
            {"NUMBA_DISABLE_JIT": "1"},
        ),
        ("notebooks", _pytest(["--nbmake", "notebooks"]) if notebooks else None, {}),
        # ~12 s: the public API's types (pyproject.toml [tool.mypy])
        ("mypy", [str(PY), "-m", "mypy"], {}),
    ]


def ensure_browser() -> None:
    """The report test opens the page in Debian's headless Chromium: install it if missing.

    Only where that can be done without asking (root with apt-get, as on CI); elsewhere
    the report test fails with a message saying what to install.
    """
    if shutil.which("chromium") or Path("/usr/bin/chromium").exists():
        return
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        _say("installing Debian's chromium for the report test (apt-get)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if subprocess.call(["apt-get", "update", "-qq"], env=env) == 0:
            subprocess.call(["apt-get", "install", "-y", "-qq", "chromium"], env=env)
    else:
        _say("chromium not found: the report test needs it (Debian: apt-get install chromium)")


def cmd_test() -> int:
    ensure_env()
    ensure_browser()
    results = []
    for name, cmd, extra in test_steps():
        if cmd is None:
            results.append((name, "skipped (nothing to run)", 0.0, True))
            _say(f"step {name}: skipped (nothing to run)")
            continue
        _say(f"step {name}")
        t0 = time.perf_counter()
        rc = _run(cmd, env=_venv_env(**extra))
        dt = time.perf_counter() - t0
        if rc == 0:
            status = "passed"
        elif rc == PYTEST_NO_TESTS:
            status = "FAILED (pytest exit 5: no tests collected)"
        else:
            status = f"FAILED (exit {rc})"
        results.append((name, status, dt, rc == 0))
        _say(f"step {name}: {status} in {dt:.1f} s")
    print("\n[dev.py] summary", flush=True)
    for name, status, dt, _ok in results:
        print(f"  {name:<34} {status:<45} {dt:6.1f} s", flush=True)
    failed = [r for r in results if not r[3]]
    print(f"[dev.py] {'FAILED: ' + ', '.join(r[0] for r in failed) if failed else 'all steps passed'}")
    return 1 if failed else 0


def cmd_lint() -> int:
    ensure_env()
    rc1 = _run([str(PY), "-m", "ruff", "check", "."])
    rc2 = _run([str(PY), "-m", "ruff", "format", "--check", "."])
    rc3 = _run([str(PY), "-m", "mypy"])
    return 1 if rc1 or rc2 or rc3 else 0


COMMANDS = {"run": cmd_run, "test": cmd_test, "lint": cmd_lint}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in COMMANDS:
        print(f"usage: python3 dev.py {{{'|'.join(COMMANDS)}}}\n", file=sys.stderr)
        print(__doc__.split("\n\n")[2], file=sys.stderr)
        return 2
    return COMMANDS[argv[0]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
