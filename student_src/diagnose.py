"""How a wrong tensor differs from the right one: the sentence a failing check adds to its number.

A relative error of 2.5e-01 says *that* a result is wrong, not *how*. :func:`describe` looks
at properties that need nothing but the two tensors, and says which one it found first:

=============================  ===============================================================
signature                      what it means
=============================  ===============================================================
an integer dtype               ``torch.long`` where floats are needed: every value truncated
whole numbers                  integer values where the expected ones are not (an integer
                               buffer somewhere on the way)
a known mistake                equal to what the caller computed for a named mistake
                               (``known_mistakes``: ``{"log_softmax score": lambda: ...}``)
flipped sign                   ``got == -expected`` (correlation -1)
a constant factor              ``got == c * expected`` for one ``c`` (16x: a sum of 4x4
                               positions where a mean belongs)
negative values                where the expected values have none
scaled over the batch          each expected map is min-max scaled on its own (min 0, max 1),
                               yours only together with the others
the same sums                  each image's values add up to the expected total, but are
                               spread differently (credited to the wrong entries)
the same values, reordered     a permutation of the expected values
zeros kept positive            positive where the expected map is exactly 0 (a missing ReLU)
=============================  ===============================================================

Then, for any difference, *where*: which images differ (and which agree), which channels,
which rows and columns of a map, and the first differing element with both values. Values
that the student must not see (a hidden check's expected numbers) stay out when
``reveal_expected=False``: positions, the student's own values, factors and correlations are
shown, the expected values never.

This module holds no reference solution and imports nothing of the kit: the visible checks
(``student_src.checks``) and the grader's hidden checks use it alike.
"""

from __future__ import annotations

import math

import torch

#: Names of the axes, by number of dimensions, when the caller gives none.
DEFAULT_AXES = {1: ("entry",), 2: ("image", "entry"), 3: ("image", "row", "column"),
                4: ("image", "channel", "row", "column")}


def _as_double(value) -> torch.Tensor:
    return torch.as_tensor(value).detach().cpu().double()


def _close(a: torch.Tensor, b: torch.Tensor, tolerance: float) -> bool:
    """``rel_error(a, b) <= tolerance`` (the checks' measure), for tensors of one shape."""
    scale = a.abs().max().item() + b.abs().max().item() if a.numel() else 0.0
    return scale == 0 or (a - b).abs().max().item() / scale <= tolerance


def correlation(got, expected) -> float:
    """Pearson correlation of the flattened tensors; NaN when either is constant."""
    a, b = _as_double(got).flatten(), _as_double(expected).flatten()
    a, b = a - a.mean(), b - b.mean()
    denominator = (a.norm() * b.norm()).item()
    return float("nan") if denominator == 0 else (a @ b).item() / denominator


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _factor_name(factor: float) -> str:
    """'16' for 16.0, '1/16' for 0.0625, else the number."""
    for value, name in ((factor, "{:d}"), (1 / factor if factor else 0.0, "1/{:d}")):
        nearest = round(value)
        if nearest >= 2 and abs(value - nearest) <= 1e-3 * nearest:
            return name.format(nearest)
    return _fmt(factor)


# ----------------------------------------------------------------------------- signatures


def integer_where_float(got: torch.Tensor, expected, **_) -> str | None:
    """The integer-dtype signature: ``got`` holds integers where ``expected`` is floating point."""
    if not got.is_floating_point() and not got.is_complex() and got.dtype != torch.bool \
            and torch.as_tensor(expected).is_floating_point():
        return (f"is an integer tensor ({got.dtype}) where floats are needed: every value is truncated; make "
                "buffers with a float dtype (`torch.zeros(..., dtype=x.dtype)`)")
    return None


def _whole_numbers(got, expected, **_) -> str | None:
    """Whole numbers, or whole numbers divided by a small count (an average over n of them)."""
    g, e = _as_double(got), _as_double(expected)
    if int((g != 0).sum()) < 2:
        return None
    for count in range(1, 65):
        scaled, reference = g * count, e * count
        if (scaled - scaled.round()).abs().max() <= 1e-6 * max(1.0, scaled.abs().max().item()) \
                and not torch.equal(reference, reference.round()):
            what = "only whole numbers" if count == 1 else f"only whole numbers divided by {count}"
            return (f"has {what} where the expected values are not: an integer buffer on the way "
                    "(`dtype=torch.long`) truncated them")
    return None


def _flipped_sign(got, expected, tolerance, **_) -> str | None:
    g, e = _as_double(got), _as_double(expected)
    if e.abs().max() > 0 and _close(g, -e, max(tolerance, 1e-6)):
        return "is minus the expected values: a flipped sign"
    rho = correlation(g, e)
    if rho <= -0.99:
        return f"is anti-correlated with the expected values (correlation {rho:.3f}): a flipped sign?"
    return None


def _constant_factor(got, expected, tolerance, **_) -> str | None:
    g, e = _as_double(got), _as_double(expected)
    energy = (e * e).sum().item()
    if energy == 0 or g.abs().max() == 0:
        return None
    factor = (g * e).sum().item() / energy
    if factor <= 0 or abs(factor - 1) < 1e-3 or not _close(g, factor * e, max(tolerance, 1e-6)):
        return None
    name = _factor_name(factor)
    hint = ""
    if "/" in name or name.isdigit():
        hint = ": a sum where a mean belongs, or the reverse?"
    return f"is {name} times the expected values (a constant factor){hint}"


def _negative_values(got, expected, tolerance, **_) -> str | None:
    g, e = _as_double(got), _as_double(expected)
    scale = max(g.abs().max().item(), e.abs().max().item(), 1e-30)
    if e.numel() and e.min() >= 0 and g.min() < -tolerance * scale:
        count = int((g < -tolerance * scale).sum())
        return (f"has {count} negative values (lowest {_fmt(g.min().item())}) where the expected values have none: "
                "a ReLU, an absolute value or a clamp missing?")
    return None


def _per_image_extremes(t: torch.Tensor):
    flat = t.flatten(1)
    return flat.min(dim=1).values, flat.max(dim=1).values


def _scaled_over_batch(got, expected, tolerance, **_) -> str | None:
    g, e = _as_double(got), _as_double(expected)
    if g.dim() < 3 or len(g) < 2:
        return None
    slack = max(10 * tolerance, 1e-4)
    e_min, e_max = _per_image_extremes(e)
    g_min, g_max = _per_image_extremes(g)
    each_scaled = bool((e_min.abs() <= slack).all() and ((e_max - 1).abs() <= slack).logical_or(e_max <= slack).all())
    batch_scaled = abs(g.min().item()) <= slack and abs(g.max().item() - 1) <= slack
    not_each = bool(((g_min.abs() > slack) | (((g_max - 1).abs() > slack) & (g_max > slack))).any())
    if each_scaled and batch_scaled and not_each:
        maxima = ", ".join(_fmt(v) for v in g_max.tolist()[:8])
        return (f"was min-max scaled over the whole batch, not per image (your per-image maxima: {maxima}): take "
                "each image's min and max (`amin`/`amax` over dims (1, 2), `keepdim=True`)")
    return None


def _same_sums(got, expected, tolerance, axes, **_) -> str | None:
    g, e = _as_double(got), _as_double(expected)
    if g.dim() != 2 or g.shape[1] < 2:
        return None
    if not _close(g.sum(dim=1), e.sum(dim=1), max(tolerance, 1e-6)):
        return None
    entry = axes[-1]
    if _close(g.sort(dim=1).values, e.sort(dim=1).values, max(tolerance, 1e-6)):
        found = f"has each image's expected values at the wrong {_plural(entry)}"
    else:
        found = f"has the right total per image, spread over the wrong {_plural(entry)}"
    if entry == "region":
        found += ": credit v(S + {i}) - v(S) to the region just added, `order[k]`, not to the position k"
    return found


def _zeros_kept_positive(got, expected, tolerance, **_) -> str | None:
    g, e = _as_double(got), _as_double(expected)
    if g.dim() < 2 or e.numel() == 0 or e.min() < 0 or e.max() <= 0:
        return None
    zeros = e <= 1e-7 * e.max()
    positive = g > max(0.05, 10 * tolerance) * max(g.max().item(), 1e-30)
    if zeros.sum() >= max(4, zeros.numel() // 20) and (zeros & positive).sum() >= zeros.sum() // 2:
        return (f"is positive at {int((zeros & positive).sum())} of the {int(zeros.sum())} positions where the expected "
                "map is 0: a ReLU missing on the map?")
    return None


#: The signatures, most specific first: the first that matches is named.
SIGNATURES = (integer_where_float, _whole_numbers, _flipped_sign, _constant_factor, _negative_values,
              _scaled_over_batch, _same_sums, _zeros_kept_positive)


def _known_mistake(got, known_mistakes, tolerance) -> str | None:
    """The name of the first known mistake whose value ``got`` equals (each computed only now)."""
    g = _as_double(got)
    for name, compute in (known_mistakes or {}).items():
        try:
            value = _as_double(compute() if callable(compute) else compute)
        except Exception:  # noqa: BLE001 (a mistake that cannot be computed here is just not named)
            continue
        if value.shape == g.shape and _close(g, value, max(tolerance, 1e-6) * 2):
            return f"matches a known mistake: {name}"
    return None


def signature(got, expected, tolerance: float = 0.0, known_mistakes=None, axes=None) -> str | None:
    """The first matching signature of the difference, as a phrase after "yours ...", or ``None``."""
    got_tensor = torch.as_tensor(got).detach()
    axes = axes or DEFAULT_AXES.get(got_tensor.dim(), ("entry",) * got_tensor.dim())
    found = integer_where_float(got_tensor, expected)
    if found:
        return found
    if got_tensor.shape == torch.as_tensor(expected).shape and _close(_as_double(got), _as_double(expected), tolerance):
        return None
    found = _known_mistake(got_tensor, known_mistakes, tolerance)
    if found:
        return found
    for test in SIGNATURES[1:]:
        found = test(got_tensor, expected, tolerance=tolerance, axes=axes)
        if found:
            return found
    return None


# ----------------------------------------------------------------------------- where


def _plural(noun: str) -> str:
    return noun[:-1] + "ies" if noun.endswith("y") else noun + "s"


def _list(indices) -> str:
    indices = list(indices)
    shown = ", ".join(str(i) for i in indices[:8])
    return shown + (f" and {len(indices) - 8} more" if len(indices) > 8 else "")


def where(got, expected, tolerance: float, axes=None, reveal_expected: bool = True) -> str:
    """Which images, channels and map positions differ, and the first differing element."""
    g, e = _as_double(got), _as_double(expected)
    if g.shape != e.shape or g.numel() == 0:
        return ""
    axes = axes or DEFAULT_AXES.get(g.dim(), ("entry",) * g.dim())
    scale = g.abs().max().item() + e.abs().max().item()
    wrong = (g - e).abs() > max(tolerance, 1e-12) * scale
    if not wrong.any():
        return ""
    parts = []
    if g.dim() >= 2 and len(g) > 1:
        bad = wrong.flatten(1).any(dim=1).nonzero().flatten().tolist()
        if len(bad) < len(g):
            good = [i for i in range(len(g)) if i not in bad]
            parts.append(f"{_plural(axes[0])} {_list(bad)} differ ({_list(good)} agree)" if len(bad) > 1
                         else f"only {axes[0]} {bad[0]} differs")
        else:
            parts.append(f"every {axes[0]} differs")
    if g.dim() == 4 and g.shape[1] > 1:
        channels = wrong.any(dim=3).any(dim=2).any(dim=0).nonzero().flatten().tolist()
        if len(channels) < g.shape[1]:
            parts.append(f"{_plural(axes[1])} {_list(channels)} only" if len(channels) > 1 else f"{axes[1]} {channels[0]} only")
    if g.dim() >= 3 and g.shape[-1] * g.shape[-2] > 1:
        positions = wrong.reshape(-1, *g.shape[-2:]).any(dim=0)
        rows, columns = positions.any(dim=1).nonzero().flatten(), positions.any(dim=0).nonzero().flatten()
        if len(rows) < g.shape[-2] or len(columns) < g.shape[-1]:
            parts.append(f"{_plural(axes[-2])} {rows.min().item()}-{rows.max().item()}, "
                         f"{_plural(axes[-1])} {columns.min().item()}-{columns.max().item()}")
    first = tuple(int(i) for i in wrong.nonzero()[0].tolist())
    shown = f"yours {_fmt(g[first].item())}" + (f", expected {_fmt(e[first].item())}" if reveal_expected else "")
    parts.append(f"first at [{', '.join(map(str, first))}]: {shown}")
    return "; ".join(parts)


def describe(got, expected, tolerance: float, known_mistakes=None, axes=None, reveal_expected: bool = True) -> str:
    """A sentence on how ``got`` differs from ``expected`` (same shape): the signature of the
    difference when one matches (see the module docstring), else the correlation, then where.

    ``known_mistakes``: ``{"a log_softmax score instead of the raw logit": callable or tensor}``,
    what named mistakes would give (callables are computed only here, after a failure).
    ``axes``: names of the dimensions (``("image", "region")``). ``reveal_expected=False``
    leaves every expected value out (a hidden check's)."""
    found = signature(got, expected, tolerance, known_mistakes, axes)
    if found:
        how = f"yours {found}"
    else:
        rho = correlation(got, expected)
        how = ("differs without a pattern this check knows"
               + ("" if math.isnan(rho) else f" (correlation {rho:.2f})"))
    location = where(got, expected, tolerance, axes, reveal_expected)
    if not location:
        return how
    return f"{how}{' ' if how.endswith('?') else '. '}Where: {location}"
