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

from collections.abc import Iterable, Mapping

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


#: rows per block of :func:`_forward_outputs` (its scratch stays in L1/L2)
_BLOCK = 256


@nb.njit(cache=True, error_model="numpy", inline="always")
def _fraction(mt, ts):
    """Mass fraction of an element in a stream: inf for metal without tonnes, 0 for neither."""
    return mt / ts if ts > 0.0 else (np.inf if mt > 1e-12 else 0.0)


@nb.njit(cache=True, inline="always")
def _interleave(scr, q0, dst, b0, nb_):
    """``dst[4 (b0 + k) + s] = scr[(q0 + s) BLOCK + k]``: four stream columns into rows of 4."""
    d = dst[4 * b0 : 4 * (b0 + nb_)]
    s0 = scr[q0 * _BLOCK : q0 * _BLOCK + nb_]
    s1 = scr[(q0 + 1) * _BLOCK : (q0 + 1) * _BLOCK + nb_]
    s2 = scr[(q0 + 2) * _BLOCK : (q0 + 2) * _BLOCK + nb_]
    s3 = scr[(q0 + 3) * _BLOCK : (q0 + 3) * _BLOCK + nb_]
    for k in range(nb_):
        d[4 * k] = s0[k]
        d[4 * k + 1] = s1[k]
        d[4 * k + 2] = s2[k]
        d[4 * k + 3] = s3[k]


@nb.njit(cache=True, inline="always")
def _put(scr, q0, out, row, b0, nb_):
    """:func:`_interleave` into ``out[row]``, or nothing where the output is not wanted (row -1)."""
    if row >= 0:
        _interleave(scr, q0, out[row], b0, nb_)


@nb.njit(cache=True, error_model="numpy")
def _forward_outputs(feed_t, feed_frac, split, con_t, limit, g_scale, c_scale, slot, out):
    """The wanted outputs of :func:`forward` in one pass over the rows; returns the number of failed checks.

    Element-major inputs: ``feed_t[n]``, ``feed_frac[m, n]``, ``split[m, 2, n]`` (fractions to
    the two concentrates), ``con_t[2, n]``. ``limit[m]``: highest mass fraction of each element
    in a concentrate (pure mineral); ``g_scale[m]``: grade unit in mass fraction (grade =
    fraction / g_scale); ``c_scale[m]``: contained unit per tonne of metal. The outputs, in this
    order: tonnes [t], pull [%], then per element grade [its unit], metal [t], contained [troy_oz
    or lb], distribution [%]; ``slot[2 + 4 m]`` (int64) gives each one's row in ``out[w, 4 n]``,
    or -1 for an output not wanted (not written); each row of ``out`` one output over (row,
    stream) in C order. Every output is computed in the scratch whatever is wanted, and every
    check counts: only the writes into ``out`` are skipped (same values, same failures).

    Blocks of :data:`_BLOCK` rows, element-major inside a block, so that the divisions run in
    SIMD lanes across rows (the per-row form ran them one at a time, ~40 per row); the
    scratch columns are then interleaved into the (row, stream) outputs. The checks only count
    here (more concentrate than feed; a concentrate grade above its pure mineral's; a stream
    whose elements exceed 100 % of its mass): :func:`_first_bad` finds the first of each.
    The arithmetic is that of :func:`kenomill._kernels.forward_row` and of the old per-row
    pass, operation for operation (bit-identical outputs).
    """
    n = feed_t.shape[0]
    m = feed_frac.shape[0]
    bad = 0
    scr = np.empty(16 * _BLOCK)
    tot = np.empty(4 * _BLOCK)
    tails = np.empty(_BLOCK)
    for b0 in range(0, n, _BLOCK):
        nb_ = min(_BLOCK, n - b0)
        fa = feed_t[b0 : b0 + nb_]
        c0a = con_t[0, b0 : b0 + nb_]
        c1a = con_t[1, b0 : b0 + nb_]
        for k in range(nb_):
            f = fa[k]
            c0 = c0a[k]
            c1 = c1a[k]
            bad += c0 + c1 > f * (1 + _TOL) + 1e-12
            t3 = max(f - c0 - c1, 0.0)  # -1e-13 from a concentrate equal to the feed
            tails[k] = t3
            # a zero feed: NaN, as error_model="numpy" gives 0/0
            nz = f != 0.0
            scr[k] = f
            scr[_BLOCK + k] = c0
            scr[2 * _BLOCK + k] = c1
            scr[3 * _BLOCK + k] = t3
            scr[4 * _BLOCK + k] = 100.0 * f / f if nz else np.nan
            scr[5 * _BLOCK + k] = 100.0 * c0 / f if nz else np.nan
            scr[6 * _BLOCK + k] = 100.0 * c1 / f if nz else np.nan
            scr[7 * _BLOCK + k] = 100.0 * t3 / f if nz else np.nan
        _put(scr, 0, out, slot[0], b0, nb_)
        _put(scr, 4, out, slot[1], b0, nb_)
        for j in range(m):
            ff = feed_frac[j, b0 : b0 + nb_]
            s0 = split[j, 0, b0 : b0 + nb_]
            s1 = split[j, 1, b0 : b0 + nb_]
            gs = g_scale[j]
            cs = c_scale[j]
            lim = limit[j] * (1 + _TOL)
            first = j == 0
            for k in range(nb_):
                e = fa[k] * ff[k]  # as in forward_element
                a, b, r = _kernels.forward_element(fa[k], ff[k], s0[k], s1[k])
                fr0 = _fraction(e, fa[k])
                fr1 = _fraction(a, c0a[k])
                fr2 = _fraction(b, c1a[k])
                fr3 = _fraction(r, tails[k])
                bad += (fr1 > lim) + (fr2 > lim)
                tot[k] = (0.0 if first else tot[k]) + fr0
                tot[_BLOCK + k] = (0.0 if first else tot[_BLOCK + k]) + fr1
                tot[2 * _BLOCK + k] = (0.0 if first else tot[2 * _BLOCK + k]) + fr2
                tot[3 * _BLOCK + k] = (0.0 if first else tot[3 * _BLOCK + k]) + fr3
                scr[k] = fr0 / gs
                scr[_BLOCK + k] = fr1 / gs
                scr[2 * _BLOCK + k] = fr2 / gs
                scr[3 * _BLOCK + k] = fr3 / gs
                scr[4 * _BLOCK + k] = e
                scr[5 * _BLOCK + k] = a
                scr[6 * _BLOCK + k] = b
                scr[7 * _BLOCK + k] = r
                scr[8 * _BLOCK + k] = e * cs
                scr[9 * _BLOCK + k] = a * cs
                scr[10 * _BLOCK + k] = b * cs
                scr[11 * _BLOCK + k] = r * cs
                ez = e != 0.0
                scr[12 * _BLOCK + k] = 100.0 * e / e if ez else np.nan
                scr[13 * _BLOCK + k] = 100.0 * a / e if ez else np.nan
                scr[14 * _BLOCK + k] = 100.0 * b / e if ez else np.nan
                scr[15 * _BLOCK + k] = 100.0 * r / e if ez else np.nan
            for q in range(4):
                _put(scr, 4 * q, out, slot[2 + 4 * j + q], b0, nb_)
        for s in range(4):
            for k in range(nb_):
                bad += tot[s * _BLOCK + k] > 1 + _TOL
    return bad


@nb.njit(cache=True, error_model="numpy")
def _first_bad(feed_t, con_t, limit, out, first_bad):
    """The first row failing each check of :func:`_forward_outputs` (run only when one failed).

    ``first_bad[2 + 2 m]`` (in, all -1): [0] the first row with more concentrate than feed,
    [1] 4 row + stream of the first stream whose elements exceed 100 % of its mass,
    [2 + 2 j + c] the first row whose concentrate c has element j above its pure-mineral
    grade; -1 where none. Fractions recomputed from the outputs as the main pass does.
    """
    n = feed_t.shape[0]
    m = limit.shape[0]
    for i in range(n):
        if con_t[0, i] + con_t[1, i] > feed_t[i] * (1 + _TOL) + 1e-12 and first_bad[0] < 0:
            first_bad[0] = i
        for s in range(4):
            ts = out[0, 4 * i + s]
            tot = 0.0
            for j in range(m):
                fr = _fraction(out[3 + 4 * j, 4 * i + s], ts)
                tot += fr
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
    variables: Iterable[str] | None = None,
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
    variables : iterable of str, optional
        Names of the variables to return, as in the returned Dataset (e.g. ``("tonnes",
        "Pb_t", "Zn_t")``); None (the default): all of them. Only those are written into
        memory: at 10^6 rows, tonnes and metal alone take some 50-60 % of the time of every
        variable (the checks, the arithmetic and the preparation of the inputs remain).
        The Dataset holds them in the order below, whatever the order given (a name given
        twice is returned once), with the values and attributes of the full result bit for
        bit; every check of the inputs and of the streams runs whatever is asked for. A
        single string is refused (give ``("tonnes",)``), as are unknown names and an empty
        selection.

    Returns
    -------
    xarray.Dataset
        Dimension ``stream`` = feed, pbcon, zncon, tails: ``tonnes`` [t], ``mass_pull`` [%],
        and per element ``<El>_grade`` [its unit], ``<El>_t`` [t of element],
        ``<El>_contained`` [troy_oz or lb], ``<El>_distribution`` [% of feed element]
        (those of ``variables`` only, when given).
    """
    els = _check_elements(head, recovery, concentrate_t, mass_pull, concentrate_grade)
    slot, n_out = _slots(els, variables)
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
    m, n = feed_frac.shape
    out = np.empty((n_out, 4 * n))
    if _forward_outputs(feed_t, feed_frac, split, con_t, limit, g_scale, c_scale, slot, out):
        # rare: the full outputs again (those the messages read may not have been written)
        full = np.empty((2 + 4 * m, 4 * n))
        _forward_outputs(feed_t, feed_frac, split, con_t, limit, g_scale, c_scale, np.arange(2 + 4 * m), full)
        first_bad = np.full(2 + 2 * m, -1, dtype=np.int64)
        _first_bad(feed_t, con_t, limit, full, first_bad)
        _raise_first_bad(first_bad, feed_t, con_t, full, els, limit, concentrate_grade)
    return _forward_dataset(template, out, slot, els, grade_u, cont_u)


def _variables(els, grade_u=None, cont_u=None) -> list[tuple[str, dict]]:
    """Every variable :func:`forward` can return with its attributes, in the order of
    ``_forward_outputs``' outputs (its ``slot``): tonnes, pull, then per element grade, metal,
    contained, distribution. ``grade_u``, ``cont_u``: the elements' units (None: names only)."""
    out = [
        ("tonnes", {"units": "t", "long_name": "solids tonnes"}),
        ("mass_pull", {"units": "%", "long_name": "stream tonnes as share of feed tonnes"}),
    ]
    for j, e in enumerate(els):
        out += [
            (f"{e}_grade", {"units": grade_u and grade_u[j], "long_name": f"{e} grade"}),
            (f"{e}_t", {"units": "t", "long_name": f"{e} contained, tonnes of metal"}),
            (f"{e}_contained", {"units": cont_u and cont_u[j], "long_name": f"{e} contained"}),
            (f"{e}_distribution", {"units": "%", "long_name": f"share of feed {e} in the stream"}),
        ]
    return out


def _variable_names(els) -> list[str]:
    """Every variable :func:`forward` can return, in its order (that of ``_forward_outputs``' slots)."""
    return [name for name, _ in _variables(els)]


def _slots(els, variables) -> tuple[np.ndarray, int]:
    """``slot[2 + 4 m]``: each output's row in ``_forward_outputs``' ``out`` (-1: not wanted), and
    the number wanted; all of them for ``variables=None``."""
    names = _variable_names(els)
    if variables is None:
        return np.arange(len(names), dtype=np.int64), len(names)
    if isinstance(variables, str | bytes):
        raise ValidationError(
            f"variables: found the string {variables!r}; give an iterable of names, "
            f"e.g. ({variables!r},); allowed: {names}"
        )
    if not isinstance(variables, Iterable):
        raise ValidationError(
            f"variables: found {type(variables).__name__}; give an iterable of names; allowed: {names}"
        )
    asked = list(variables)
    unknown = [v for v in asked if v not in names]
    if unknown:
        raise ValidationError(f"variables: found unknown names {unknown}; allowed: {names}")
    if not asked:
        raise ValidationError(f"variables: found an empty selection; give at least one of {names}")
    wanted = set(asked)
    slot = np.full(len(names), -1, dtype=np.int64)
    k = 0
    for i, name in enumerate(names):
        if name in wanted:
            slot[i] = k
            k += 1
    return slot, k


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
    """Everything broadcast to common row dims and flattened, element-major: (template,
    feed_t[n], feed_frac[m, n], split[m, 2, n], con_t[2, n])."""
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

    def flat(da, dst):
        # already on the row dims in their order, same indexes: no broadcast_like (xarray's
        # alignment and a copy per input; same values)
        same = da.dims == rdims and da.shape == shape
        if same and all(d not in da.indexes or da.indexes[d].equals(template.indexes[d]) for d in rdims):
            dst[...] = da.values.reshape(n)
        else:
            dst[...] = da.broadcast_like(template).transpose(*rdims).values.reshape(n)

    m = len(els)
    feed_t = np.empty(n)
    con_t = np.empty((2, n))
    feed_frac = np.empty((m, n))
    split = np.empty((m, 2, n))
    flat(feed, feed_t)
    for k in range(2):
        flat(con.isel(concentrate=k, drop=True), con_t[k])
    for j, e in enumerate(els):
        flat(head_f[e], feed_frac[j])
        for k in range(2):
            flat(rec_f[e].isel(concentrate=k, drop=True), split[j, k])
    return template, feed_t, feed_frac, split, con_t


def _raise_first_bad(first_bad, feed_t, con_t, out, els, limit, concentrate_grade) -> None:
    """One line for the first impossible row the kernel flagged (more concentrate than feed, a
    grade above the pure mineral's, elements above 100 % of a stream)."""
    n = feed_t.shape[0]
    tonnes = out[0].reshape(n, 4)
    metal = np.stack([out[3 + 4 * j].reshape(n, 4) for j in range(len(els))], axis=-1)
    if first_bad[0] >= 0:
        i = int(first_bad[0])
        raise ValidationError(
            f"concentrate tonnes: found {con_t[:, i].sum():g} t of concentrate from "
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


def _forward_dataset(template, out, slot, els, grade_u, cont_u) -> xr.Dataset:
    """The streams as a Dataset over the row dims and ``stream``: each wanted variable a C-ordered
    view of its row ``slot[k]`` of ``out``, in one constructor call (``ds[name] = ...`` per
    variable aligned each in turn)."""
    shape = template.shape
    out_dims = (*template.dims, "stream")
    coords = {k: v for k, v in template.coords.items()}
    coords["stream"] = ("stream", list(STREAMS))
    data_vars = {
        name: xr.Variable(out_dims, out[slot[k]].reshape(*shape, 4), attrs)
        for k, (name, attrs) in enumerate(_variables(els, grade_u, cont_u))
        if slot[k] >= 0
    }
    return xr.Dataset(data_vars, coords=coords, attrs={"elements": ",".join(els)})


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
