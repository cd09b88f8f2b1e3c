"""Diagnostics of importance weights and of finished runs.

:func:`pareto_khat` fits a generalized Pareto distribution to the largest importance
weights, as Pareto-smoothed importance sampling does (docs/math.md §2.5); every AIS
step records it beside the importance ESS. :func:`check_result` reads a finished
result and emits a few :class:`RDWarning` lines, one per kind of trouble, naming the
examples and the temperatures (docs/analysing.md lists the thresholds and why).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "DIVERGENCE_SHARE",
    "KHAT_MIN_CHAINS",
    "KHAT_THRESHOLD",
    "RDWarning",
    "check_result",
    "khat_tail_length",
    "pareto_khat",
]

KHAT_THRESHOLD = 0.7
"""Pareto k-hat above which weighted estimates are unreliable (Vehtari et al.)."""

DIVERGENCE_SHARE = 0.5
"""Divergences flagged above this share of the rejections the target allows.

With HMC's target 0.65, more than ``0.5 * (1 - 0.65) = 17.5%`` of an example's
transitions divergent; with NUTS' 0.8, 10% (docs/analysing.md explains why not 1%).
"""

KHAT_MIN_CHAINS = 100
"""Fewer chains fit k-hat to under 20 weights: recorded, too noisy to warn on."""

ESS_FRACTION = 0.05
"""Importance ESS below this fraction of the chains is flagged (never for <= 20)."""

ACCEPTANCE_TOLERANCE = 0.25
"""Smoothed acceptance this far below the target (plus noise) is flagged."""

_PRIOR_STRENGTH = 10.0  # weakly informative prior on k: N(0.5, .) worth 10 points
_PRIOR_SCALE_FACTOR = 3.0  # Zhang & Stephens: the grid of b scales with the quartile


class RDWarning(UserWarning):
    """A run finished, but a diagnostic says its estimates may be unreliable.

    Emitted by :func:`rdppl.rd_curve`, :func:`rdppl.bdmc` and
    :func:`rdppl.log_likelihood` through :func:`check_result`: a few lines per run,
    one per kind of trouble. Silence with
    ``warnings.simplefilter("ignore", rdppl.RDWarning)``; turn into errors with
    ``"error"``.
    """


def khat_tail_length(num_samples: int) -> int:
    """Number of largest weights the Pareto fit uses (PSIS with ``r_eff = 1``).

    ``floor(M / 5)`` up to ``M = 225``, then ``floor(3 sqrt(M))``. With fewer than
    6 (``M < 30``) the fit's first quartile is its minimum and :func:`pareto_khat`
    returns NaN, as PSIS does.
    """
    if num_samples > 225:
        return int(math.floor(3.0 * math.sqrt(num_samples)))
    return num_samples // 5


def pareto_khat(log_weights: jax.Array, axis: int = -1) -> jax.Array:
    """Pareto k-hat of importance weights, vectorised over the other axes.

    The ``T = khat_tail_length(M)`` largest weights, minus the next largest, are fit
    by a generalized Pareto distribution with Zhang and Stephens' (2009) empirical
    Bayes estimate and the weakly informative prior on ``k`` of Vehtari et al.
    (2024), as in PSIS (docs/math.md §2.5). ``k < 0.5``: the weights have a finite
    variance; ``0.5 < k < 0.7``: a finite mean and slow convergence; ``k > 0.7``:
    weighted estimates are unreliable.

    Parameters
    ----------
    log_weights
        Unnormalised log weights; ``-inf`` (zero weight) is allowed.
    axis
        The axis of the samples (chains).

    Returns
    -------
    jax.Array
        ``k`` with ``axis`` removed. NaN with fewer than 30 samples, when no weight
        is finite, and when the largest weights are all equal (e.g. all weights
        equal, after resampling); ``inf`` when the fit fails or when a quarter of
        the tail equals its cutoff while its largest weight does not (a few
        weights dominate so much that the others underflow; PSIS gives NaN).
    """
    log_weights = jnp.moveaxis(jnp.asarray(log_weights), axis, -1)
    if not jnp.issubdtype(log_weights.dtype, jnp.floating):
        log_weights = log_weights.astype(jnp.result_type(float))
    dtype = log_weights.dtype
    num_samples = log_weights.shape[-1]
    tail = khat_tail_length(num_samples)
    batch = log_weights.shape[:-1]
    if tail < 6:
        return jnp.full(batch, jnp.nan, dtype)
    top = jnp.max(log_weights, axis=-1, keepdims=True)
    alive = jnp.isfinite(top[..., 0])
    shifted = log_weights - jnp.where(jnp.isfinite(top), top, 0.0)
    ordered = jnp.sort(shifted, axis=-1)
    cutoff = jnp.exp(ordered[..., num_samples - tail - 1])
    exceedance = jnp.exp(ordered[..., num_samples - tail :]) - cutoff[..., None]
    khat = _gpd_shape(exceedance)
    return jnp.where(alive, khat, jnp.nan)


def _gpd_shape(x: jax.Array) -> jax.Array:
    """Zhang-Stephens estimate of the shape ``k`` from sorted exceedances ``x >= 0``.

    Vectorised over the leading axes; ``x`` has ``n`` samples on the last axis.
    """
    n = x.shape[-1]
    dtype = x.dtype
    grid_size = 30 + int(math.sqrt(n))
    quartile = x[..., int(n / 4 + 0.5) - 1]
    degenerate = quartile <= x[..., 0]
    safe_quartile = jnp.where(degenerate, 1.0, quartile)
    largest = jnp.where(degenerate, 1.0, x[..., -1])
    j = jnp.arange(1, grid_size + 1, dtype=dtype)
    b = 1.0 - jnp.sqrt(grid_size / (j - 0.5))  # (grid,)
    b = b[None, :] / (_PRIOR_SCALE_FACTOR * safe_quartile.reshape(-1, 1)) + 1.0 / (
        largest.reshape(-1, 1)
    )
    flat_x = x.reshape(-1, n)
    k = jnp.mean(jnp.log1p(-b[:, :, None] * flat_x[:, None, :]), axis=-1)
    profile = n * (jnp.log(-b / k) - k - 1.0)  # log profile likelihood of b
    weight = jax.nn.softmax(profile, axis=-1)
    # drop negligible grid points, as the reference implementations do
    weight = jnp.where(weight >= 10.0 * np.finfo(np.float64).eps, weight, 0.0)
    weight = weight / jnp.sum(weight, axis=-1, keepdims=True)
    b_post = jnp.sum(b * weight, axis=-1)
    k_post = jnp.mean(jnp.log1p(-b_post[:, None] * flat_x), axis=-1)
    k_post = (n * k_post + _PRIOR_STRENGTH * 0.5) / (n + _PRIOR_STRENGTH)
    k_post = jnp.where(jnp.isnan(k_post), jnp.inf, k_post).reshape(x.shape[:-1])
    # a degenerate tail: all equal (no tail: NaN, as PSIS), or a quarter of it
    # underflowed to the cutoff while the largest did not (one weight dominates:
    # infinitely heavy, where PSIS gives NaN)
    return jnp.where(degenerate, jnp.where(x[..., -1] > 0, jnp.inf, jnp.nan), k_post)


# -- checks of a finished result -------------------------------------------------


def _format_examples(examples: np.ndarray) -> str:
    listed = [int(e) for e in examples[:8]]
    more = len(examples) - len(listed)
    text = ", ".join(str(e) for e in listed)
    return f"example{'s' if len(examples) > 1 else ''} {text}" + (
        f" and {more} more" if more > 0 else ""
    )


def _where(flags: np.ndarray, examples: np.ndarray, betas: np.ndarray | None) -> str:
    """'examples 0, 3 at beta in [0.1, 2]' for an ``(example, beta)`` mask."""
    rows = np.any(flags, axis=1)
    if betas is None:
        return _format_examples(examples[rows])
    columns = np.any(flags, axis=0)
    low, high = betas[columns].min(), betas[columns].max()
    span = f"beta = {low:.4g}" if low == high else f"beta in [{low:.4g}, {high:.4g}]"
    return f"{_format_examples(examples[rows])} at {span}"


def _chains(result: Any) -> int | None:
    value = result.attrs.get("num_chains")
    return None if value is None else int(value)


def _window(num_temperatures: int) -> int:
    """Temperatures over which noisy diagnostics are smoothed: 5 to 1/20 of them."""
    return int(min(num_temperatures, max(5, num_temperatures // 20)))


def _moving_median(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving median along the last axis, NaNs ignored (all NaN: NaN)."""
    half = window // 2
    padded = np.pad(
        np.asarray(values, np.float64),
        [(0, 0)] * (values.ndim - 1) + [(half, window - 1 - half)],
        constant_values=np.nan,
    )
    windows = np.lib.stride_tricks.sliding_window_view(padded, window, axis=-1)
    with warnings.catch_warnings():  # all-NaN windows (fewer than 30 chains)
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(windows, axis=-1)


def _smoothed(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average along the last axis (NaNs ignored)."""
    finite = np.isfinite(values)
    total = np.where(finite, values, 0.0)
    kernel = np.ones(window)

    def convolve(a: np.ndarray) -> np.ndarray:
        return np.apply_along_axis(np.convolve, -1, a, kernel, mode="same")

    count = convolve(finite.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, convolve(total) / count, np.nan)


def _check_weights(
    label: str,
    khat: np.ndarray | None,
    ess: np.ndarray | None,
    examples: np.ndarray,
    betas: np.ndarray | None,
    num_chains: int | None,
) -> list[str]:
    messages = []
    if khat is not None and (num_chains or 0) >= KHAT_MIN_CHAINS:
        # a fit to the few largest of the weights is noisy: flag k-hat above the
        # threshold at most temperatures of a window of temperatures, not a lone
        # spike; and above 0.7 by more than the fit's
        # standard error (1 + k) / sqrt(T) at k = 0.7 (the weights change little
        # from one temperature to the next, so their estimate's error persists)
        typical = _moving_median(khat, _window(khat.shape[-1]))
        threshold = KHAT_THRESHOLD + (1.0 + KHAT_THRESHOLD) / math.sqrt(
            khat_tail_length(num_chains)
        )
        flags = (np.nan_to_num(typical, nan=-np.inf) > threshold) & ~np.isnan(khat)
        if flags.any():
            messages.append(
                f"{label}: Pareto k-hat of the importance weights exceeds "
                f"{KHAT_THRESHOLD} (median over {_window(khat.shape[-1])} "
                f"temperatures up to {np.max(typical[flags]):.2f}, above "
                f"{threshold:.2f} with its error) for "
                f"{_where(flags, examples, betas)}: a few chains carry the weight "
                "and the weighted estimates there are unreliable; use more chains "
                "or more temperatures"
            )
    if ess is not None and num_chains is not None:
        threshold = ESS_FRACTION * num_chains
        flags = np.nan_to_num(ess, nan=np.inf) < threshold
        if flags.any():
            messages.append(
                f"{label}: importance ESS below {threshold:.3g} "
                f"({ESS_FRACTION:.0%} of {num_chains} chains; lowest "
                f"{np.min(ess[flags]):.3g}) for {_where(flags, examples, betas)}; "
                "use more chains or more temperatures"
            )
    return messages


def _check_sample_stats(
    label: str, stats: Any, num_chains: int | None, adapted: bool
) -> list[str]:
    """Checks of a ``sample_stats`` group over ``(example, beta)``."""
    examples = np.asarray(stats["example"].values)
    betas = np.asarray(stats["beta"].values, np.float64)
    get = {name: np.asarray(stats[name].values) for name in stats.data_vars}
    messages = _check_weights(
        label,
        get.get("pareto_khat"),
        get.get("importance_ess"),
        examples,
        betas,
        num_chains,
    )
    if num_chains is not None and "num_nonfinite" in get:
        flags = get["num_nonfinite"] >= num_chains
        if flags.any():
            messages.append(
                f"{label}: every chain's density became non-finite for "
                f"{_where(flags, examples, betas)}: log Z is -inf and the weighted "
                "estimates NaN there; check the model's support and the data"
            )
    transitions = betas.size - 1
    if "num_transitions" in get:  # a curve kept at fewer points than temperatures
        transitions = int(np.sum(get["num_transitions"]))
    target = stats.attrs.get("target_acceptance")
    if "acceptance_rate" in get and target is not None and betas.size > 1:
        acceptance = get["acceptance_rate"].astype(np.float64)
        window = _window(betas.size - 1)
        smoothed = _smoothed(acceptance, window)
        chains = num_chains or 1
        # the mean of chains * window Bernoulli-like acceptances, tested at
        # every example and temperature: a z-score that grows with their number
        tests = max(2, acceptance.size)
        z = max(3.0, math.sqrt(2.0 * math.log(tests)))
        noise = z * math.sqrt(target * (1.0 - target) / (chains * window))
        low = float(target) - ACCEPTANCE_TOLERANCE - noise
        flags = np.nan_to_num(smoothed, nan=np.inf) < low
        flags &= np.isfinite(acceptance)
        if flags.any():
            messages.append(
                f"{label}: acceptance rate far below its target {target:g} "
                f"(smoothed over {window} temperatures, lowest "
                f"{np.nanmin(smoothed[flags]):.2f}) for "
                f"{_where(flags, examples, betas)}: the chains barely move, so AIS "
                "is biased there; use smaller steps or more leapfrog steps"
            )
    if (
        num_chains is not None
        and "num_divergent" in get
        and transitions > 0
        and target is not None
    ):
        divergent = get["num_divergent"].astype(np.float64)
        fraction = divergent.sum(axis=1) / (num_chains * transitions)
        threshold = DIVERGENCE_SHARE * (1.0 - float(target))
        bad = fraction > threshold
        if bad.any():
            flags = bad[:, None] & (divergent > 0)
            messages.append(
                f"{label}: more than {threshold:.1%} divergent "
                f"transitions (up to {fraction.max():.1%}) for "
                f"{_where(flags, examples, betas)}; use smaller steps or a mass "
                "matrix"
            )
    if "step_size" in get and transitions > 0:
        messages.extend(_check_step_size(label, stats, get, examples, betas, adapted))
    return messages


def _check_step_size(
    label: str,
    stats: Any,
    get: dict[str, np.ndarray],
    examples: np.ndarray,
    betas: np.ndarray,
    adapted: bool,
) -> list[str]:
    """Non-finite step sizes; with adaptation on, one that never moved."""
    step = get["step_size"][:, 1:].astype(np.float64)  # no transition at beta_0
    nonfinite = ~np.isfinite(step)
    messages = []
    if nonfinite.any():
        flags = np.concatenate([np.zeros((len(examples), 1), bool), nonfinite], 1)
        messages.append(
            f"{label}: the step size became non-finite for "
            f"{_where(flags, examples, betas)} (NaN gradients or acceptance); "
            "check the model's log density"
        )
    initial = stats.attrs.get("initial_step_size")
    lower = stats.attrs.get("step_size_min")
    if adapted and initial is not None and step.shape[1] > 1:
        stuck = np.all(step == step[:, :1], axis=1) & np.all(np.isfinite(step), 1)
        at_start = stuck & np.isclose(step[:, 0], float(initial), rtol=1e-6)
        at_floor = (
            stuck & np.isclose(step[:, 0], float(lower), rtol=1e-6)
            if lower is not None
            else np.zeros_like(stuck)
        )
        never = at_start | at_floor
        if never.any():
            flags = np.zeros((len(examples), len(betas)), bool)
            flags[never, 1:] = True
            where = "its initial value" if at_start.any() else "its lower bound"
            messages.append(
                f"{label}: the step size never adapted (it stayed at {where}, "
                f"{step[never][0, 0]:.3g}) for {_where(flags, examples, betas)}; "
                "check the acceptance rates and the model's gradients"
            )
    return messages


def _check_estimates(label: str, group: Any, variables: tuple[str, ...]) -> list[str]:
    """Examples whose estimates are not finite (every chain's weight zero)."""
    messages = []
    for name in variables:
        if name not in group.data_vars:
            continue
        values = np.asarray(group[name].values, np.float64)
        flags = ~np.isfinite(values)
        if flags.any():
            examples = np.asarray(group["example"].values)
            where = (
                _where(flags, examples, np.asarray(group["beta"].values, np.float64))
                if values.ndim == 2
                else _format_examples(examples[flags])
            )
            messages.append(
                f"{label}: {name} is not finite for {where}: every chain's density "
                "became non-finite; check the model's support and the data"
            )
    return messages


def check_result(result: Any, *, stacklevel: int = 2) -> list[str]:
    """Warn (:class:`RDWarning`) about unreliable parts of a finished result.

    One warning per kind of trouble and group, each naming the examples and the
    range of ``beta``: Pareto k-hat above 0.7 over a window of temperatures (with
    at least 100 chains), importance ESS below a tenth of the chains, examples
    whose chains all became non-finite, a smoothed acceptance rate far below the
    kernel's target, divergent transitions above half the rejections the target
    allows, a step size that became non-finite or never adapted. BDMC results are
    checked for lost examples only: their gap measures the error
    (docs/analysing.md explains each threshold).

    Parameters
    ----------
    result
        A tree returned by :func:`rdppl.rd_curve`, :func:`rdppl.bdmc` or
        :func:`rdppl.log_likelihood` (or read back from a file).
    stacklevel
        Passed to :func:`warnings.warn` (2: the line that called this function;
        the estimators pass 3, their caller's line).

    Returns
    -------
    list of str
        The messages warned, empty for a healthy run.
    """
    label = result.name or "result"
    num_chains = _chains(result)
    messages: list[str] = []
    children = result.children
    if "sample_stats" in children:
        stats = children["sample_stats"].to_dataset()
        adapted = bool(stats.attrs.get("adapt_step_size", 0))
        messages += _check_sample_stats(label, stats, num_chains, adapted)
    if "bdmc" in children:
        # the gap is BDMC's own measure of the error: only lost examples warn
        bdmc = children["bdmc"].to_dataset()
        messages += _check_estimates(f"{label} (BDMC)", bdmc, ("lower", "upper"))
    if "log_marginal_likelihood" in children:
        group = children["log_marginal_likelihood"].to_dataset()
        if "sample_stats" not in children:
            # importance sampling and IWAE: weights over their own samples
            samples = group.attrs.get("num_samples", num_chains)
            examples = np.asarray(group["example"].values)
            ess = np.asarray(group["importance_ess"].values, np.float64)[:, None]
            messages += _check_weights(
                label,
                None,
                ess,
                examples,
                None,
                None if samples is None else int(samples),
            )
        messages += _check_estimates(label, group, ("log_marginal_likelihood",))
    for message in messages:
        warnings.warn(message, RDWarning, stacklevel=stacklevel)
    return messages
