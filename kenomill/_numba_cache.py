"""numba's on-disk cache, made aware of the modules a cached kernel compiles in.

numba keys a cached function on the stamp (mtime and size) of the file that defines it,
and nothing else. A kernel that calls functions of another module (the Monte Carlo
kernel inlines the mill response of :mod:`kenomill.recovery`; the response calls
:func:`kenomill._kernels.forward_row`) would therefore keep running the old code from its
cache after that other module changes (seen once: the kernel gave 86.8 % Ag recovery where
the changed response gave 90.8 %). :func:`track` registers a file with the files it
depends on; its caches are then stamped with theirs too.

This reaches into numba's private caching internals (``numba.core.caching``), which is
why it lives alone here: :data:`KNOWN_NUMBA` lists the numba versions it was checked
against, and ``tests/test_numba_cache.py`` fails on any other, so an upgrade is reviewed
here (does the locator still apply, or has numba learnt to track dependencies).
"""

from __future__ import annotations

import os

from numba.core import caching

#: numba versions (major.minor) whose private cache locator API this module was checked with
KNOWN_NUMBA = ("0.68",)

#: tracked file -> the files its cached kernels compile in
_TRACKED: dict[str, tuple[str, ...]] = {}


def _stamp(paths: tuple[str, ...]) -> tuple:
    out = []
    for path in paths:
        st = os.stat(path)
        out.append(caching._hash_source_file(path, st.st_mtime, st.st_size))
    return tuple(out)


class _StampWithDependencies(caching._CacheLocator):
    """Locate a tracked file's caches as numba would, with a stamp that covers its dependencies."""

    @classmethod
    def from_function(cls, py_func, py_file):
        deps = _TRACKED.get(os.path.abspath(py_file))
        if deps is None:
            return None
        for other in caching.CacheImpl._locator_classes:
            if other is cls:
                continue
            loc = other.from_function(py_func, py_file)
            if loc is not None:
                own = loc.get_source_stamp
                loc.get_source_stamp = lambda own=own: (own(), _stamp(deps))
                return loc
        return None


def track(module_file: str, dependencies) -> None:
    """Stamp the caches of kernels defined in ``module_file`` with ``dependencies`` too.

    Call it at the top of the module, before its first ``@njit(..., cache=True)``: kernels
    with explicit signatures are compiled (or loaded from the cache) when decorated.
    """
    _TRACKED[os.path.abspath(module_file)] = tuple(os.path.abspath(d) for d in dependencies)
    if _StampWithDependencies not in caching.CacheImpl._locator_classes:
        caching.CacheImpl._locator_classes.insert(0, _StampWithDependencies)
