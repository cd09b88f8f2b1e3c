"""Check the sites of an eagerly traced NumPyro program and summarise them.

rdppl anneals from a normalised prior over continuous latents to one observed site
(docs/math.md §9): other observed sites, discrete, scaled or masked latents and
reconstruction sites that are not deterministic are refused here with an error naming
the site.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from numpyro import distributions as dist
from numpyro.infer import util as numpyro_util

from rdppl.program.decorator import (
    DISTORTIONS,
    Distortion,
    LatentSite,
    ModelStructure,
    distortion_name,
)

__all__ = [
    "base_distribution",
    "check_distortion",
    "check_latent",
    "check_observed_support",
    "check_sites",
    "structure_of",
]


def base_distribution(fn: dist.Distribution) -> dist.Distribution:
    """The distribution under Independent, Expanded and Masked wrappers."""
    while isinstance(
        fn, dist.Independent | dist.ExpandedDistribution | dist.MaskedDistribution
    ):
        fn = fn.base_dist
    return fn


def check_distortion(distortion: Any) -> None:
    """A known distortion name or a callable."""
    if isinstance(distortion, str):
        if distortion not in DISTORTIONS:
            raise ValueError(
                f"distortion must be one of {DISTORTIONS} or a callable "
                f"d(x, x_hat) -> scalar, got {distortion!r}"
            )
    elif not callable(distortion):
        raise TypeError(
            f"distortion must be one of {DISTORTIONS} or a callable "
            f"d(x, x_hat) -> scalar, got {distortion!r}"
        )


def check_sites(
    trace: Mapping[str, Any], observed: str, reconstruction: str | None
) -> list[str]:
    """Validate the trace's sites; return the latent site names."""
    sample_sites = [n for n, s in trace.items() if s["type"] == "sample"]
    if observed not in trace or trace[observed]["type"] != "sample":
        raise ValueError(
            f"observed site {observed!r} is not a sample site of the model; "
            f"its sample sites are {sample_sites}"
        )
    if reconstruction is not None:
        if reconstruction not in trace:
            raise ValueError(
                f"reconstruction site {reconstruction!r} is not in the model; "
                f"its sites are {list(trace)}"
            )
        if reconstruction == observed:
            raise ValueError(
                f"reconstruction site {reconstruction!r} is the observed site; it "
                "must be a numpyro.deterministic site computed from the latents "
                "(the decoder output f(z)), not the data"
            )
        if trace[reconstruction]["type"] != "deterministic":
            kind = trace[reconstruction]["type"]
            if kind == "sample":
                kind = "sample site (a latent)"
            else:
                kind = f"{kind} site"
            raise ValueError(
                f"reconstruction site {reconstruction!r} is a {kind}; it must "
                "be a numpyro.deterministic site computed from the latents (the "
                "decoder output f(z))"
            )
    others = [
        n
        for n, s in trace.items()
        if s["type"] == "sample" and s["is_observed"] and n != observed
    ]
    if others:
        raise ValueError(
            f"the model has observed sites or factors other than {observed!r}: "
            f"{others}; rdppl needs the prior over the latents to be normalised, so "
            "every other site must be latent"
        )
    latent_names = [
        n
        for n, s in trace.items()
        if s["type"] == "sample" and not s["is_observed"] and n != observed
    ]
    if not latent_names:
        raise ValueError("the model has no latent sample sites")
    for name in latent_names:
        check_latent(trace[name])
    return latent_names


def check_latent(site: Mapping[str, Any]) -> None:
    """A continuous, unscaled, unmasked latent site."""
    name, fn = site["name"], site["fn"]
    if fn.support.is_discrete or getattr(fn, "is_discrete", False):
        raise ValueError(
            f"latent site {name!r} has a discrete distribution "
            f"({type(fn).__name__} with support {fn.support}); rdppl needs "
            "continuous latents (marginalise or relax discrete sites)"
        )
    scale = site.get("scale")
    if scale is not None and not numpyro_util.is_identically_one(scale):
        raise ValueError(
            f"latent site {name!r} has its log density scaled by {scale} "
            "(numpyro.handlers.scale or a subsampled plate); rdppl needs a "
            "normalised prior: remove the scale or subsample only observed sites"
        )
    # a mask drops log-density terms: compare with the unmasked distribution
    if isinstance(fn, dist.MaskedDistribution) and not np.array_equal(
        np.asarray(fn.log_prob(site["value"])),
        np.asarray(fn.base_dist.log_prob(site["value"])),
    ):
        raise ValueError(
            f"latent site {name!r} is masked (numpyro.handlers.mask or "
            ".mask()); a masked latent has an improper prior, which rdppl cannot "
            "anneal from: mask only the observed site"
        )


def check_observed_support(
    fns: Sequence[dist.Distribution], observed: str, data: Any
) -> None:
    """Every example in the support of the observed site's distribution.

    Parameters
    ----------
    fns
        The observed site's distribution in two or more eager traces (different
        seeds); a support that differs between them depends on the latents and is
        not checked.
    observed
        The observed site's name, for the error message.
    data
        All examples, the example axis first (checked at once, not one by one).

    Raises
    ------
    ValueError
        Naming the site, the first example outside the support, its value and the
        support (a Poisson site given 2.5, a Bernoulli site given 2); or the first
        example whose log density is not finite at any of the traces' draws from
        the prior (data that overflow the run's float dtype, ``1e30`` for a Normal
        site in float32).
    """
    supports = [fn.support for fn in fns]
    if not all(_same_constraint(supports[0], other) for other in supports[1:]):
        return  # the support depends on the latents (e.g. Uniform(0, z))
    data = np.asarray(data)
    try:
        with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
            inside = np.asarray(supports[0].check(data), dtype=bool)
    except Exception:  # noqa: BLE001 - a support the data cannot be checked against
        return
    if inside.ndim < 1 or inside.shape[0] != data.shape[0]:
        return
    if bool(np.all(inside)):
        _check_observed_log_density(fns, observed, data)
        return
    bad = tuple(int(i) for i in np.argwhere(~inside)[0])
    example = np.asarray(data[bad])
    value = (
        str(example) if example.ndim == 0 else np.array2string(example, threshold=20)
    )
    base = base_distribution(fns[0])
    raise ValueError(
        f"data[{', '.join(map(str, bad))}] = {value} is outside the support of "
        f"observed site {observed!r} ({type(base).__name__} with support "
        f"{supports[0]}); every example must be a possible value of the observed "
        "distribution"
    )


def _check_observed_log_density(
    fns: Sequence[dist.Distribution], observed: str, data: np.ndarray
) -> None:
    """Every example with a finite log density at one draw from the prior at least.

    Data inside the support whose log density is not finite at every draw
    overflow the run's float dtype (``(x - mu)**2 / sigma**2`` above 3.4e38 in
    float32): every AIS weight would be ``-inf`` and the curve NaN.
    """
    finite = np.zeros(data.shape[0], dtype=bool)
    values = []
    for fn in fns:
        try:
            with (
                jax.numpy_dtype_promotion("standard"),
                jax.numpy_rank_promotion("allow"),
            ):
                log_density = np.asarray(fn.log_prob(data))
        except Exception:  # noqa: BLE001 - a density the data cannot be given to
            return
        if log_density.ndim < 1 or log_density.shape[0] != data.shape[0]:
            return
        log_density = log_density.reshape(data.shape[0], -1).sum(axis=1)
        values.append(log_density)
        finite |= np.isfinite(log_density)
    if bool(np.all(finite)):
        return
    bad = int(np.flatnonzero(~finite)[0])
    example = np.asarray(data[bad])
    value = (
        str(example) if example.ndim == 0 else np.array2string(example, threshold=20)
    )
    raise ValueError(
        f"data[{bad}] = {value} gives observed site {observed!r} a log density of "
        f"{values[0][bad]} ({log_density.dtype.name}) at every draw from the prior "
        "that was tried: the data overflow the run's float dtype; rescale the data "
        "(or the model's scale), or enable jax_enable_x64 for float64"
    )


def _same_constraint(first: Any, second: Any) -> bool:
    """Whether two constraints have the same type and parameters."""
    leaves, tree = jax.tree_util.tree_flatten(first)
    other_leaves, other_tree = jax.tree_util.tree_flatten(second)
    if tree != other_tree or len(leaves) != len(other_leaves):
        return False
    for a, b in zip(leaves, other_leaves, strict=True):
        if a is b:
            continue
        try:
            if np.shape(a) != np.shape(b) or not np.array_equal(
                np.asarray(a), np.asarray(b)
            ):
                return False
        except (TypeError, ValueError):
            return False
    return True


def structure_of(
    trace: Mapping[str, Any],
    second_trace: Mapping[str, Any],
    latent_names: list[str],
    latent_shapes: dict[str, tuple[int, ...]],
    *,
    observed: str,
    reconstruction: str | None,
    distortion: Distortion,
) -> ModelStructure:
    """Summarise a checked trace (a second trace shows a latent-dependent scale)."""
    latent_sites = tuple(
        LatentSite(
            name,
            tuple(np.shape(trace[name]["value"])),
            latent_shapes[name],
            str(trace[name]["fn"].support),
        )
        for name in sorted(latent_names)
    )
    base = base_distribution(trace[observed]["fn"])
    scale_is_fixed = False
    if isinstance(base, dist.Normal):
        scales = [
            np.asarray(base_distribution(t[observed]["fn"]).scale)
            for t in (trace, second_trace)
        ]
        scale_is_fixed = scales[0].shape == scales[1].shape and bool(
            np.allclose(*scales)
        )
    return ModelStructure(
        latent_sites=latent_sites,
        deterministic_sites=tuple(
            n for n, s in trace.items() if s["type"] == "deterministic"
        ),
        observed=observed,
        reconstruction=reconstruction,
        distortion=distortion_name(distortion),
        observed_shape=tuple(trace[observed]["fn"].shape()),
        observed_distribution=type(base).__name__,
        observed_scale_is_fixed=scale_is_fixed,
        standard_normal_prior=all(
            _is_standard_normal(t[name]["fn"])
            for name in latent_names
            for t in (trace, second_trace)
        ),
        reconstruction_shape=None
        if reconstruction is None
        else tuple(np.shape(trace[reconstruction]["value"])),
        num_latent_dimensions=int(
            sum(int(np.prod(shape)) for shape in latent_shapes.values())
        ),
    )


def _is_standard_normal(fn: dist.Distribution) -> bool:
    """Whether a latent's prior is N(0, 1) in every coordinate (no transform)."""
    base = base_distribution(fn)
    return (
        isinstance(base, dist.Normal)
        and bool(np.all(np.asarray(base.loc) == 0))
        and bool(np.all(np.asarray(base.scale) == 1))
    )
