"""The numba cache locator that stamps a kernel's cache with the files it compiles in."""

from __future__ import annotations

import numba
import pytest

from kenomill import _kernels, _mc_kernels, _numba_cache, recovery


def test_numba_version_is_one_the_locator_was_checked_with():
    """numba.core.caching is private: a new numba version must be reviewed in _numba_cache."""
    major_minor = ".".join(numba.__version__.split(".")[:2])
    assert major_minor in _numba_cache.KNOWN_NUMBA, (
        f"numba {numba.__version__}: check kenomill/_numba_cache.py against its caching "
        f"internals, then add {major_minor!r} to KNOWN_NUMBA"
    )


def test_the_kernels_are_tracked_with_their_dependencies():
    import os

    deps = _numba_cache._TRACKED[os.path.abspath(_mc_kernels.__file__)]
    assert os.path.abspath(recovery.__file__) in deps and os.path.abspath(_kernels.__file__) in deps
    assert os.path.abspath(_kernels.__file__) in _numba_cache._TRACKED[os.path.abspath(recovery.__file__)]


def test_a_dependency_change_changes_the_cache_stamp(tmp_path, monkeypatch):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("def f():\n    return 1\n")
    b.write_text("x = 1\n")
    monkeypatch.setattr(_numba_cache, "_TRACKED", {})
    _numba_cache.track(str(a), [str(b)])

    def f():
        return 1

    loc = _numba_cache._StampWithDependencies.from_function(f, str(a))
    if loc is None:
        pytest.fail("no numba cache locator accepted the tracked file")
    before = loc.get_source_stamp()
    b.write_text("x = 22\n")  # a new size (and mtime): the dependency changed
    assert loc.get_source_stamp() != before
    # an untracked file is left to numba's own locators
    assert _numba_cache._StampWithDependencies.from_function(f, str(tmp_path / "c.py")) is None
