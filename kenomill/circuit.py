"""The mill: feed -> lead concentrate -> zinc concentrate -> tailings, with exact closure.

Public functions take and return xarray objects with units; the arithmetic is in the
numba kernels of :mod:`kenomill._kernels` (NumPy twins in :mod:`kenomill._reference`).

Grades are given as a Dataset (or a mapping) with one variable per element (``Ag``,
``Pb``, ``Zn``, ``Au``, ``Fe``, ...), each carrying its own ``units`` attribute
(``g/t``, ``%``, ``ppm``, ``oz/t`` or ``fraction``; when absent, g/t for Ag and Au and %
for the rest). Any number of elements flows through the same kernels.

References
----------
Wills, B.A., Finch, J.A., *Wills' Mineral Processing Technology*, 8th ed., 2016, ch. 3
(two- and three-product formulae, metallurgical accounting).
"""

from __future__ import annotations

from collections.abc import Mapping

import numba as nb
import numpy as np
import xarray as xr

from kenomill import _kernels, units, variables
from kenomill.errors import ValidationError, check_range

CONCENTRATES = ("pbcon", "zncon")
STREAMS = variables.STREAMS
STREAM_NAMES = {
    "feed": "mill feed",
    "pbcon": "lead concentrate",
    "zncon": "zinc concentrate",
    "tails": "final tailings",
}
_TOL = 1e-9


def _as_da(x, name: str) -> xr.DataArray:
    if isinstance(x, xr.DataArray):
        return x
    a = np.asarray(x, dtype=float)
    if a.ndim == 0:
        return xr.DataArray(a)
    if a.ndim == 1:
        return xr.DataArray(a, dims=("row",))
    raise ValidationError(
        f"{name}: found an array of shape {a.shape}; give an xarray.DataArray "
        "with named dimensions for more than one dimension"
    )


def _elements(grades, name: str) -> list[str]:
    if not isinstance(grades, Mapping | xr.Dataset):
        raise ValidationError(
            f"{name}: found {type(grades).__name__}; expected an xarray.Dataset "
            "or a mapping with one variable per element, e.g. {'Ag': ..., 'Pb': ...}"
        )
    els = [str(k) for k in grades.keys()]
    if not els:
        raise ValidationError(f"{name}: found no elements; give at least one, e.g. 'Pb'")
    return els


def _grade_fraction(grades, el: str, name: str, unit: str | None = None) -> xr.DataArray:
    da = _as_da(grades[el], f"{name}.{el}")
    u = unit or da.attrs.get("units") or units.grade_unit(el)
    frac = da.copy(data=units.to_fraction(da.values, u))
    check_range(f"{name}.{el} [{u}]", frac.values / units.GRADE_UNITS[u], 0.0, 1.0 / units.GRADE_UNITS[u], u)
    return frac


@nb.njit(cache=True, error_model="numpy")
def _forward_outputs(
    feed_t,
    feed_frac,
    split,
    con_t,
    limit,
    g_scale,
    c_scale,
    tonnes,
    pull,
    grade,
    metal,
    contained,
    dist,
    first_bad,
):
    """Every output of :func:`forward` and its checks in one pass over the rows.

    ``limit[m]`` highest mass fraction of each element in a concentrate (pure mineral);
    ``g_scale[m]``: grade unit in mass fraction (grade = fraction / g_scale); ``c_scale[m]``:
    contained unit per tonne of metal. Outputs [n, 4(, m)]: tonnes [t], pull [%], grade
    [its unit], metal [t], contained [troy_oz or lb], distribution [%]. ``first_bad[2 + 2 m]``
    (in, all -1): [0] the first row with more concentrate than feed, [1] 4 row + stream of
    the first stream whose elements exceed 100 % of its mass, [2 + 2 j + c] the first row
    whose concentrate c has element j above its pure-mineral grade; -1 where none. One pass
    instead of ~60 NumPy passes and temporaries over the rows (issue 14: the wrapper took
    ~50x its kernel's time per row).
    """
    n = feed_t.shape[0]
    m = feed_frac.shape[1]
    o_t = np.empty(3)
    o_m = np.empty((3, m))
    for i in range(n):
        f = feed_t[i]
        if con_t[i, 0] + con_t[i, 1] > f * (1 + _TOL) + 1e-12 and first_bad[0] < 0:
            first_bad[0] = i
        _kernels.forward_row(f, feed_frac[i], split[i], con_t[i], o_t, o_m)
        tonnes[i, 0] = f
        tonnes[i, 1] = o_t[0]
        tonnes[i, 2] = o_t[1]
        tonnes[i, 3] = max(o_t[2], 0.0)  # -1e-13 from a concentrate equal to the feed
        for s in range(4):
            # a zero feed: NaN, as error_model="numpy" gives 0/0 (and as plain Python under
            # NUMBA_DISABLE_JIT=1 without a RuntimeWarning)
            pull[i, s] = 100.0 * tonnes[i, s] / f if f != 0.0 else np.nan
        for s in range(4):
            ts = tonnes[i, s]
            tot = 0.0
            for j in range(m):
                mt = f * feed_frac[i, j] if s == 0 else o_m[s - 1, j]
                metal[i, s, j] = mt
                if ts > 0.0:
                    fr = mt / ts
                elif mt > 1e-12:
                    fr = np.inf
                else:
                    fr = 0.0
                tot += fr
                grade[i, s, j] = fr / g_scale[j]
                contained[i, s, j] = mt * c_scale[j]
                feed_m = metal[i, 0, j]
                dist[i, s, j] = 100.0 * mt / feed_m if feed_m != 0.0 else np.nan
                if (s == 1 or s == 2) and fr > limit[j] * (1 + _TOL) and first_bad[2 + 2 * j + s - 1] < 0:
                    first_bad[2 + 2 * j + s - 1] = i
            if tot > 1 + _TOL and first_bad[1] < 0:
                first_bad[1] = i * 4 + s


def forward(
    ore_t,
    head,
    recovery,
    *,
    concentrate_t=None,
    mass_pull=None,
    concentrate_grade: Mapping[str, tuple[str, object]] | None = None,
) -> xr.Dataset:
    """Route feed through the circuit and return every stream.

    Parameters
    ----------
    ore_t : xarray.DataArray or array_like
        Feed solids [t], any dimensions (periods, draws, ...).
    head : xarray.Dataset or mapping
        Head grade of each element, one variable per element with its ``units``.
    recovery : xarray.Dataset or mapping
        For each element of ``head``, the share of its feed reporting to each concentrate
        [%], along a dimension ``concentrate`` = ("pbcon", "zncon"). The rest goes to tails.
    concentrate_t : xarray.DataArray, optional
        Concentrate tonnes [t] along ``concentrate``.
    mass_pull : xarray.DataArray, optional
        Concentrate tonnes as a share of feed [%] along ``concentrate``.
    concentrate_grade : mapping, optional
        ``{"pbcon": ("Pb", 66.0), "zncon": ("Zn", 43.0)}``: the grade of one key element
        in each concentrate (in that element's unit); concentrate tonnes follow as
        recovered metal / grade. Give exactly one of the three.

    Returns
    -------
    xarray.Dataset
        Dimension ``stream`` = feed, pbcon, zncon, tails: ``tonnes`` [t], ``mass_pull`` [%],
        and per element ``<El>_grade`` [its unit], ``<El>_t`` [t of element],
        ``<El>_contained`` [troy_oz or lb], ``<El>_distribution`` [% of feed element].
    """
    els = _check_elements(head, recovery, concentrate_t, mass_pull, concentrate_grade)
    feed = _as_da(ore_t, "ore_t")
    check_range("ore_t [t]", feed.values, 0.0, np.inf, "t")
    head_f = {e: _grade_fraction(head, e, "head") for e in els}
    rec_f = {e: _recovery_fraction(recovery, e) for e in els}
    con = _concentrate_tonnes(feed, head_f, rec_f, els, concentrate_t, mass_pull, concentrate_grade)
    template, feed_t, feed_frac, split, con_t = _rows(feed, con, head_f, rec_f, els)
    grade_u = [
        head_f[e].attrs.get("units") or _as_da(head[e], e).attrs.get("units") or units.grade_unit(e)
        for e in els
    ]
    cont_u = [units.contained_unit(e) for e in els]
    limit = np.array([units.PURE_MINERAL_GRADE.get(e, 1.0) for e in els])
    g_scale = np.array([units.GRADE_UNITS[u] for u in grade_u])
    c_scale = np.array([float(units.tonnes_to_contained(1.0, u)) for u in cont_u])
    n, m = feed_frac.shape
    out = {
        "tonnes": np.empty((n, 4)),
        "pull": np.empty((n, 4)),
        "grade": np.empty((n, 4, m)),
        "metal": np.empty((n, 4, m)),
        "contained": np.empty((n, 4, m)),
        "dist": np.empty((n, 4, m)),
    }
    first_bad = np.full(2 + 2 * m, -1, dtype=np.int64)
    _forward_outputs(
        feed_t, feed_frac, split, con_t, limit, g_scale, c_scale, *out.values(), first_bad
    )  # fmt: skip
    _raise_first_bad(first_bad, feed_t, con_t, out["tonnes"], out["metal"], els, limit, concentrate_grade)
    return _forward_dataset(template, out, els, grade_u, cont_u)


def _check_elements(head, recovery, concentrate_t, mass_pull, concentrate_grade) -> list[str]:
    """The elements of ``head`` (those of ``recovery`` must match) and the one concentrate mass given."""
    els = _elements(head, "head")
    rec_els = _elements(recovery, "recovery")
    missing = [e for e in els if e not in rec_els]
    extra = [e for e in rec_els if e not in els]
    if missing or extra:
        raise ValidationError(
            f"recovery: elements {rec_els} do not match head elements {els}; "
            f"missing {missing}, unknown {extra}"
        )
    given = [
        k
        for k, v in (
            ("concentrate_t", concentrate_t),
            ("mass_pull", mass_pull),
            ("concentrate_grade", concentrate_grade),
        )
        if v is not None
    ]
    if len(given) != 1:
        raise ValidationError(
            f"concentrate mass: found {given or 'none'}; give exactly one of "
            "concentrate_t, mass_pull, concentrate_grade"
        )
    return els


def _recovery_fraction(recovery, e: str) -> xr.DataArray:
    """Element ``e``'s recovery to the two concentrates as fractions (checked: 0-100 %, sum <= 100 %)."""
    r = _as_da(recovery[e], f"recovery.{e}")
    if "concentrate" not in r.dims:
        raise ValidationError(
            f"recovery.{e}: found dims {r.dims}; a dimension 'concentrate' with {CONCENTRATES} is required"
        )
    r = r.sel(concentrate=list(CONCENTRATES)) if "concentrate" in r.coords else r
    check_range(f"recovery.{e} [%]", r.values, 0.0, 100.0, "%")
    # NumPy's sum: xarray's skips NaN with a where-mask pass (0.2 s at 10^6 rows), and
    # check_range has refused NaN already
    total = r.values.sum(axis=r.get_axis_num("concentrate"))
    if (total > 100.0 + 1e-7).any():
        v = float(total.max())
        raise ValidationError(
            f"recovery.{e} [%]: found {v:g} % to the two concentrates together; "
            "allowed: at most 100 % (more metal out than in)"
        )
    return r / 100.0


def _concentrate_tonnes(feed, head_f, rec_f, els, concentrate_t, mass_pull, concentrate_grade):
    """Concentrate tonnes along ``concentrate``, from whichever of the three was given."""
    if concentrate_t is not None:
        con = _as_da(concentrate_t, "concentrate_t")
        check_range("concentrate_t [t]", con.values, 0.0, np.inf, "t")
    elif mass_pull is not None:
        mp = _as_da(mass_pull, "mass_pull")
        check_range("mass_pull [%]", mp.values, 0.0, 100.0, "%")
        con = feed * mp / 100.0
    else:
        parts = []
        for c in CONCENTRATES:
            if c not in concentrate_grade:
                raise ValidationError(
                    f"concentrate_grade: found keys {list(concentrate_grade)}; "
                    f"both {CONCENTRATES} are required"
                )
            el, g = concentrate_grade[c]
            if el not in els:
                raise ValidationError(f"concentrate_grade.{c}: unknown element {el!r}; allowed: {els}")
            gf = _grade_fraction({el: g}, el, f"concentrate_grade.{c}", None)
            if (gf.values <= 0).any():
                raise ValidationError(
                    f"concentrate_grade.{c}.{el}: found 0; a positive grade is "
                    "required to derive concentrate tonnes"
                )
            k = CONCENTRATES.index(c)
            parts.append(feed * head_f[el] * rec_f[el].isel(concentrate=k, drop=True) / gf)
        con = xr.concat(parts, dim="concentrate")
    if "concentrate" not in con.dims:
        raise ValidationError(
            f"concentrate tonnes: found dims {con.dims}; a dimension "
            "'concentrate' with ('pbcon', 'zncon') is required"
        )
    return con


def _rows(feed, con, head_f, rec_f, els):
    """Everything broadcast to common row dims and flattened: (template, feed_t[n], feed_frac[n, m],
    split[n, m, 2], con_t[n, 2])."""
    arrays = [
        feed,
        con.isel(concentrate=0, drop=True),
        *head_f.values(),
        *(r.isel(concentrate=0, drop=True) for r in rec_f.values()),
    ]
    template = xr.broadcast(*arrays)[0]
    rdims = template.dims
    shape = template.shape
    n = int(np.prod(shape)) if shape else 1

    def flat(da):
        return np.ascontiguousarray(
            da.broadcast_like(template).transpose(*rdims).values, dtype=float
        ).reshape(n)

    feed_t = flat(feed)
    con_t = np.stack([flat(con.isel(concentrate=k, drop=True)) for k in range(2)], axis=1)
    m = len(els)
    feed_frac = np.empty((n, m))
    split = np.empty((n, m, 2))
    for j, e in enumerate(els):
        feed_frac[:, j] = flat(head_f[e])
        for k in range(2):
            split[:, j, k] = flat(rec_f[e].isel(concentrate=k, drop=True))
    return template, feed_t, feed_frac, split, np.ascontiguousarray(con_t)


def _raise_first_bad(first_bad, feed_t, con_t, tonnes, metal, els, limit, concentrate_grade) -> None:
    """One line for the first impossible row the kernel flagged (more concentrate than feed, a
    grade above the pure mineral's, elements above 100 % of a stream)."""
    n = feed_t.shape[0]
    if first_bad[0] >= 0:
        i = int(first_bad[0])
        raise ValidationError(
            f"concentrate tonnes: found {con_t[i].sum():g} t of concentrate from "
            f"{feed_t[i]:g} t of feed; allowed: at most the feed tonnes"
        )
    fix = (
        "lower concentrate_grade"
        if concentrate_grade is not None
        else "raise the concentrate tonnes or lower the recovery"
    )
    for j, e in enumerate(els):
        for s in (1, 2):
            i = int(first_bad[2 + 2 * j + s - 1])
            if i >= 0:
                u = units.grade_unit(e)
                frac = metal[i, s, j] / tonnes[i, s] if tonnes[i, s] > 0 else np.inf
                where = f" at row {i}" if n > 1 else ""
                raise ValidationError(
                    f"{STREAMS[s]} {e} grade: found {units.from_fraction(frac, u):g} {u}{where} "
                    f"(feed {e} x recovery / concentrate tonnes); allowed: at most "
                    f"{units.from_fraction(limit[j], u):g} {u} (pure mineral): {fix}"
                )
    if first_bad[1] >= 0:
        i, s = divmod(int(first_bad[1]), 4)
        with np.errstate(divide="ignore", invalid="ignore"):
            tot = float(np.sum(metal[i, s] / tonnes[i, s])) if tonnes[i, s] > 0 else np.inf
        raise ValidationError(
            f"{STREAMS[s]}: elements add up to {100 * tot:g} % of its mass; allowed: at most 100 %"
        )


def _forward_dataset(template, out, els, grade_u, cont_u) -> xr.Dataset:
    """The streams as a Dataset over the row dims and ``stream``."""
    shape = template.shape
    out_dims = (*template.dims, "stream")
    coords = {k: v for k, v in template.coords.items()}
    coords["stream"] = ("stream", list(STREAMS))
    ds = xr.Dataset(coords=coords)

    def put(name, values, attrs):
        ds[name] = (out_dims, values.reshape(*shape, 4), attrs)

    put("tonnes", out["tonnes"], {"units": "t", "long_name": "solids tonnes"})
    put("mass_pull", out["pull"], {"units": "%", "long_name": "stream tonnes as share of feed tonnes"})
    for j, e in enumerate(els):
        put(f"{e}_grade", out["grade"][:, :, j], {"units": grade_u[j], "long_name": f"{e} grade"})
        put(f"{e}_t", out["metal"][:, :, j], {"units": "t", "long_name": f"{e} contained, tonnes of metal"})
        put(f"{e}_contained", out["contained"][:, :, j], {"units": cont_u[j], "long_name": f"{e} contained"})
        put(
            f"{e}_distribution",
            out["dist"][:, :, j],
            {"units": "%", "long_name": f"share of feed {e} in the stream"},
        )
    ds.attrs["elements"] = ",".join(els)
    return ds


def _grades_matrix(grades, els, name, dim=None):
    out = []
    for e in els:
        if e not in grades:
            raise ValidationError(f"{name}: element {e!r} missing; found {list(grades.keys())}")
        g = _grade_fraction(grades, e, name)
        out.append(g)
    return out


def two_product_formula(feed, concentrate, tails, units_: str = "fraction") -> xr.Dataset:
    """Two-product formula on assays of one element in feed, concentrate and tails.

    Returns ``mass_pull`` = C/F = (f - t)/(c - t) [%] and ``recovery`` = c (f - t)/(f (c - t)) [%].
    Assays are in ``units_`` (any grade unit; the formula is scale-free).
    """
    f, c, t = (_as_da(x, n) for x, n in ((feed, "feed"), (concentrate, "concentrate"), (tails, "tails")))
    f, c, t = xr.broadcast(f, c, t)
    full_scale = 1.0 / units.to_fraction(1.0, units_)  # 100 for %, 1e6 for g/t
    for name, da in (("feed", f), ("concentrate", c), ("tails", t)):
        check_range(f"{name} [{units_}]", da.values, 0.0, float(full_scale), units_)
    fa, ca, ta = (
        np.ascontiguousarray(units.to_fraction(x.values, units_), dtype=float).ravel() for x in (f, c, t)
    )
    if ((ca - ta) <= 0).any() or ((fa - ta) < 0).any() or ((ca - fa) < 0).any():
        i = int(np.argmax((ca - ta <= 0) | (fa - ta < 0) | (ca - fa < 0)))
        fu, cu, tu = (float(units.from_fraction(x[i], units_)) for x in (fa, ca, ta))
        raise ValidationError(
            f"assays: found feed {fu:g}, concentrate {cu:g}, tails {tu:g} {units_}; "
            "allowed: tails <= feed <= concentrate with tails < concentrate"
        )
    y, r = np.empty_like(fa), np.empty_like(fa)
    _kernels.two_product(fa, ca, ta, y, r)
    return xr.Dataset(
        {
            "mass_pull": (f.dims, 100 * y.reshape(f.shape), {"units": "%", "long_name": "C/F"}),
            "recovery": (f.dims, 100 * r.reshape(f.shape), {"units": "%", "long_name": "recovery"}),
        },
        coords=f.coords,
    )


def backward(head, concentrate_grade, tails_grade) -> xr.Dataset:
    """Yields and recoveries of both concentrates from assays alone.

    Parameters
    ----------
    head, tails_grade : xarray.Dataset or mapping
        Assays of feed and final tails, one variable per element (with units).
    concentrate_grade : xarray.Dataset or mapping
        Assays of the concentrates, one variable per element with a dimension
        ``concentrate`` = (pbcon, zncon).

    Two elements give the three-product formula exactly; three or more over-determine
    the two yields, which are then found by least squares on relative residuals.

    Returns
    -------
    xarray.Dataset
        ``mass_pull`` [%] along ``concentrate``; ``<El>_recovery`` [%] along ``concentrate``;
        ``attrs["method"]`` and ``condition`` (condition number of the normal equations).
    """
    els = _elements(head, "head")
    if len(els) < 2:
        raise ValidationError(
            f"head: found {len(els)} element; the three-product formula needs at "
            "least two (use two_product_formula for one)"
        )
    f = _grades_matrix(head, els, "head")
    t = _grades_matrix(tails_grade, els, "tails_grade")
    cc = []
    for e in els:
        if e not in concentrate_grade:
            raise ValidationError(f"concentrate_grade: element {e!r} missing")
        da = _as_da(concentrate_grade[e], f"concentrate_grade.{e}")
        if "concentrate" not in da.dims:
            raise ValidationError(
                f"concentrate_grade.{e}: found dims {da.dims}; a dimension 'concentrate' is required"
            )
        g = _grade_fraction({e: da}, e, "concentrate_grade")
        limit = units.PURE_MINERAL_GRADE.get(e)
        if limit is not None and (g.values > limit * (1 + _TOL)).any():
            u = da.attrs.get("units") or units.grade_unit(e)
            v = float(units.from_fraction(g.values.max(), u))
            raise ValidationError(
                f"concentrate_grade.{e} [{u}]: found {v:g} {u}; allowed: at most "
                f"{units.from_fraction(limit, u):g} {u} (pure mineral)"
            )
        cc.append(g)
    c1 = [x.isel(concentrate=0, drop=True) for x in cc]
    c2 = [x.isel(concentrate=1, drop=True) for x in cc]
    template = xr.broadcast(*f, *t, *c1, *c2)[0]
    shape, rdims = template.shape, template.dims
    n = int(np.prod(shape)) if shape else 1

    def mat(lst):
        return np.ascontiguousarray(
            np.stack([x.broadcast_like(template).transpose(*rdims).values.reshape(n) for x in lst], axis=1)
        )

    F, C1, C2, T = mat(f), mat(c1), mat(c2), mat(t)
    if (F <= 0).any():
        raise ValidationError("head: found a zero grade; every element used must be present in the feed")
    y = np.empty((n, 2))
    rec = np.empty((n, 2, len(els)))
    _kernels.three_product(F, C1, C2, T, y, rec)
    u = (C1 - T) / F
    v = (C2 - T) / F
    cond = np.array([np.linalg.cond(np.stack([u[i], v[i]], axis=1)) for i in range(n)])
    if (~np.isfinite(y)).any() or (cond > 1e8).any():
        raise ValidationError(
            "concentrate_grade: the two concentrates have proportional assays "
            f"(condition number {cond.max():.3g}); their yields cannot be separated"
        )
    if (y < -1e-9).any() or (y.sum(1) > 1 + 1e-9).any():
        i = int(np.argmax((y < -1e-9).any(1) | (y.sum(1) > 1 + 1e-9)))
        raise ValidationError(
            f"assays: imply yields {100 * y[i, 0]:.4g} % and {100 * y[i, 1]:.4g} %; "
            "allowed: each >= 0 and together <= 100 % (inconsistent assays)"
        )
    dims = (*rdims, "concentrate")
    coords = dict(template.coords)
    coords["concentrate"] = ("concentrate", list(CONCENTRATES))
    ds = xr.Dataset(coords=coords)
    ds["mass_pull"] = (dims, 100 * y.reshape(*shape, 2), {"units": "%", "long_name": "C/F"})
    for j, e in enumerate(els):
        ds[f"{e}_recovery"] = (
            dims,
            100 * rec[:, :, j].reshape(*shape, 2),
            {"units": "%", "long_name": f"recovery of {e} to concentrate"},
        )
    ds["condition"] = (
        rdims,
        cond.reshape(shape),
        {"units": "1", "long_name": "condition number of the yield equations"},
    )
    ds.attrs["method"] = "three-product formula" if len(els) == 2 else "least squares"
    return ds
