"""Inverse-temperature schedules ``0 = beta_0 < beta_1 < ... < beta_K``.

Every schedule is a plain NumPy float64 array (schedules are fixed before a run and are
tiny). :func:`validate_schedule` accepts any user array that starts at zero and strictly
increases.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "equal_length_schedule",
    "insert_temperatures",
    "linear_schedule",
    "geometric_schedule",
    "sigmoid_schedule",
    "thermodynamic_schedule",
    "validate_schedule",
]


def _check_count(num_temperatures: Any) -> None:
    message = (
        "num_temperatures must be a positive integer (the number of AIS steps), "
        f"got {num_temperatures!r}"
    )
    if isinstance(num_temperatures, bool | np.bool_ | str | bytes) or (
        np.ndim(num_temperatures) != 0
    ):
        raise ValueError(message)
    try:
        valid = int(num_temperatures) == num_temperatures and num_temperatures >= 1
    except (TypeError, ValueError, OverflowError) as error:
        raise ValueError(message) from error
    if not valid:
        raise ValueError(message)


def _largest_beta() -> float:
    """The largest inverse temperature a run accepts: sqrt of its dtype's maximum."""
    return float(np.sqrt(np.finfo(np.dtype(jnp.result_type(float))).max))


def _check_real(value: Any, name: str) -> None:
    if isinstance(value, bool | np.bool_) or not isinstance(
        value, int | float | np.integer | np.floating
    ):
        raise TypeError(f"{name} must be a real number, got {value!r}")


def _check_beta_max(beta_max: Any) -> None:
    _check_real(beta_max, "beta_max")
    if not np.isfinite(beta_max) or beta_max <= 0:
        raise ValueError(f"beta_max must be finite and positive, got {beta_max!r}")
    if beta_max > _largest_beta():
        raise ValueError(
            f"beta_max must not exceed {_largest_beta():.3g} (the square root of the "
            f"largest value of the run's float dtype), got {beta_max!r}"
        )


def linear_schedule(num_temperatures: int, *, beta_max: float = 1.0) -> np.ndarray:
    """Evenly spaced inverse temperatures from 0 to ``beta_max``.

    Parameters
    ----------
    num_temperatures
        Number of AIS steps ``K``; the schedule has ``K + 1`` entries.
    beta_max
        Final inverse temperature.

    Returns
    -------
    numpy.ndarray
        Shape ``(K + 1,)``.
    """
    _check_count(num_temperatures)
    _check_beta_max(beta_max)
    return np.linspace(0.0, beta_max, int(num_temperatures) + 1)


def geometric_schedule(
    num_temperatures: int, *, beta_max: float = 1.0, beta_min: float = 1e-4
) -> np.ndarray:
    """Zero followed by geometrically spaced inverse temperatures.

    Parameters
    ----------
    num_temperatures
        Number of AIS steps ``K``; the schedule has ``K + 1`` entries.
    beta_max
        Final inverse temperature.
    beta_min
        First non-zero inverse temperature.

    Returns
    -------
    numpy.ndarray
        ``[0, beta_min, ..., beta_max]``, shape ``(K + 1,)``.
    """
    _check_count(num_temperatures)
    _check_beta_max(beta_max)
    _check_real(beta_min, "beta_min")
    if not 0 < beta_min < beta_max:
        raise ValueError(
            f"beta_min must lie in (0, beta_max={beta_max}), got {beta_min!r}"
        )
    if num_temperatures == 1:
        return np.array([0.0, beta_max])
    rest = np.geomspace(beta_min, beta_max, int(num_temperatures))
    return np.concatenate([[0.0], rest])


def sigmoid_schedule(
    num_temperatures: int, *, beta_max: float = 1.0, radius: float = 4.0
) -> np.ndarray:
    """The sigmoid schedule of Wu et al. (2017) and Huang et al. (2020).

    ``t = linspace(-radius, radius, K + 1)``, ``s = sigmoid(t)``,
    ``beta = beta_max * (s - s_0) / (s_K - s_0)``. Temperatures crowd near both ends.

    Parameters
    ----------
    num_temperatures
        Number of AIS steps ``K``; the schedule has ``K + 1`` entries.
    beta_max
        Final inverse temperature (1 for ``log p(x)``; large for RD curves).
    radius
        Half-width of the sigmoid's argument; Wu et al. use 4, Huang et al.'s RD runs
        use 10.

    Returns
    -------
    numpy.ndarray
        Shape ``(K + 1,)``.
    """
    _check_count(num_temperatures)
    _check_beta_max(beta_max)
    _check_real(radius, "radius")
    if not np.isfinite(radius) or radius <= 0:
        raise ValueError(f"radius must be finite and positive, got {radius!r}")
    t = np.linspace(-radius, radius, int(num_temperatures) + 1)
    s = 0.5 * (1.0 + np.tanh(0.5 * t))  # the sigmoid, without overflow
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        betas = beta_max * (s - s[0]) / (s[-1] - s[0])
    betas[0], betas[-1] = 0.0, beta_max
    if not np.all(np.isfinite(betas)) or np.any(np.diff(betas) <= 0):
        raise ValueError(
            f"radius={radius!r} is too large or too small for num_temperatures="
            f"{num_temperatures!r} and beta_max={beta_max!r}: neighbouring "
            "temperatures coincide in float64; use a radius between 1 and 10"
        )
    return betas


def validate_schedule(schedule: ArrayLike, *, name: str = "schedule") -> np.ndarray:
    """Check that a schedule is a 1-D array starting at 0 and strictly increasing.

    Parameters
    ----------
    schedule
        Candidate inverse temperatures.
    name
        Argument name used in error messages.

    Returns
    -------
    numpy.ndarray
        The schedule as float64.

    Raises
    ------
    TypeError
        A schedule that is not an array of real numbers (a string, strings,
        objects, complex numbers).
    ValueError
        Naming the first offending entry: not finite, too large for the run's
        float dtype (above the square root of its largest value, ``1.8e19`` in
        float32, so that ``beta * distortion`` stays finite), not starting at 0,
        not strictly increasing.
    """
    if isinstance(schedule, str | bytes):
        raise TypeError(
            f"{name} must be an array of inverse temperatures, got the string "
            f"{schedule!r:.60}; build one with rdppl.linear_schedule(...) or "
            "rdppl.sigmoid_schedule(...)"
        )
    try:
        raw = np.asarray(schedule)
    except ValueError as error:
        raise ValueError(f"{name} must be a 1-D array of numbers ({error})") from error
    if raw.dtype.kind not in "iuf":
        raise TypeError(
            f"{name} must be an array of real numbers, got dtype {raw.dtype} "
            f"({np.array2string(raw, threshold=6)})"
        )
    betas = raw.astype(np.float64)
    if betas.ndim != 1 or betas.size < 2:
        raise ValueError(
            f"{name} must be a 1-D array of at least 2 inverse temperatures, got "
            f"shape {betas.shape}"
        )
    if not np.all(np.isfinite(betas)):
        bad = int(np.flatnonzero(~np.isfinite(betas))[0])
        raise ValueError(f"{name}[{bad}] = {betas[bad]} is not finite")
    # beta times a distortion must stay finite in the run's dtype: betas up to the
    # square root of its largest value (1.8e19 in float32, 1.3e154 in float64)
    run_dtype = np.dtype(jnp.result_type(float))
    largest = _largest_beta()
    if np.any(np.abs(betas) > largest):
        bad = int(np.flatnonzero(np.abs(betas) > largest)[0])
        raise ValueError(
            f"{name}[{bad}] = {betas[bad]} is too large for the run's float dtype "
            f"{run_dtype.name}: inverse temperatures must not exceed {largest:.3g} "
            "(the square root of its largest value), or beta times a distortion "
            "overflows; use a smaller beta_max, or enable jax_enable_x64 for float64"
        )
    if betas[0] != 0.0:
        raise ValueError(f"{name} must start at 0, got {name}[0] = {betas[0]}")
    steps = np.diff(betas)
    if np.any(steps <= 0):
        bad = int(np.flatnonzero(steps <= 0)[0])
        raise ValueError(
            f"{name} must be strictly increasing, but {name}[{bad + 1}] = "
            f"{betas[bad + 1]} <= {name}[{bad}] = {betas[bad]}"
        )
    return betas


def thermodynamic_schedule(num_temperatures: int, pilot: Any) -> np.ndarray:
    """Temperatures at equal steps of thermodynamic length, measured by a pilot run.

    The thermodynamic length of the path up to ``beta`` is
    ``L(beta) = int_0^beta sqrt(Var_b[d]) db`` (docs/math.md §3.1): it grows where the
    tempered distribution changes fast. This schedule places ``K`` temperatures so
    that every AIS step covers the same length, from the distortion variances a
    pilot :func:`rdppl.rd_curve` recorded (``sample_stats.distortion_variance``,
    averaged over examples as ``sqrt``), on the pilot's own schedule by the
    trapezoidal rule. The pilot is a separate run: the schedule it gives is fixed
    before the reported run, which stays unbiased.

    Parameters
    ----------
    num_temperatures
        Number of AIS steps ``K``; the schedule has ``K + 1`` entries.
    pilot
        An ``rd_curve`` result (``xarray.DataTree``), usually with few chains and a
        coarse schedule ending at the wanted ``beta_max``.

    Returns
    -------
    numpy.ndarray
        Shape ``(K + 1,)``, from 0 to the pilot's last temperature.

    Raises
    ------
    ValueError
        If the pilot has no distortion variance, or it is not finite or zero
        everywhere.
    """
    _check_count(num_temperatures)
    try:
        stats = pilot["sample_stats"]
        variance = np.asarray(stats["distortion_variance"].values, dtype=np.float64)
        betas = validate_schedule(stats["beta"].values, name="pilot beta")
    except (KeyError, TypeError) as error:
        raise ValueError(
            "pilot must be an rd_curve result with sample_stats.distortion_variance, "
            f"got {type(pilot).__name__}"
        ) from error
    return equal_length_schedule(betas, variance, num_temperatures)


def equal_length_schedule(
    betas: ArrayLike, distortion_variance: ArrayLike, num_temperatures: int
) -> np.ndarray:
    """``K`` steps of equal thermodynamic length over ``betas`` (docs/math.md §3.1).

    Parameters
    ----------
    betas
        The schedule on which the variances were measured, ``(M + 1,)``.
    distortion_variance
        ``Var_beta[d]`` at each of ``betas``, ``(M + 1,)`` or ``(examples, M + 1)``;
        ``sqrt`` is averaged over examples.
    num_temperatures
        Number of steps ``K`` of the new schedule.

    Returns
    -------
    numpy.ndarray
        Shape ``(K + 1,)``, from 0 to ``betas[-1]``.
    """
    _check_count(num_temperatures)
    betas = validate_schedule(betas, name="betas")
    speed = np.sqrt(np.maximum(np.atleast_2d(np.asarray(distortion_variance)), 0.0))
    finite = np.isfinite(speed)
    if not np.all(finite):
        bad = np.argwhere(~finite)[0]
        raise ValueError(
            "the pilot's distortion variance is not finite at example "
            f"{bad[0]}, beta = {betas[bad[1]]}; rerun the pilot (check num_nonfinite)"
        )
    speed = speed.mean(axis=0)
    if not np.any(speed > 0):
        raise ValueError("the pilot's distortion variance is zero at every beta")
    # a floor keeps the length strictly increasing where the variance vanishes
    speed = np.maximum(speed, 1e-12 * speed.max())
    length = np.concatenate(
        [[0.0], np.cumsum(0.5 * (speed[1:] + speed[:-1]) * np.diff(betas))]
    )
    schedule = np.interp(
        np.linspace(0.0, length[-1], int(num_temperatures) + 1), length, betas
    )
    schedule[0], schedule[-1] = 0.0, betas[-1]
    # equal lengths can round onto one beta where the variance is huge
    return validate_schedule(np.unique(schedule))


def insert_temperatures(
    betas: np.ndarray, wanted: ArrayLike, *, rtol: float = 1e-12
) -> tuple[np.ndarray, list[int]]:
    """Insert ``wanted`` temperatures into a schedule, exactly.

    Returns the new schedule and the index of every wanted temperature in it (in
    the order given); a wanted value within ``rtol`` of an existing one reuses it.
    """
    betas = np.asarray(betas, np.float64)
    wanted = np.atleast_1d(np.asarray(wanted, np.float64))
    scale = max(float(betas[-1]), 1.0)
    new = [b for b in wanted if np.min(np.abs(betas - b)) > rtol * scale]
    schedule = np.unique(np.concatenate([betas, np.asarray(new, np.float64)]))
    indices = [int(np.argmin(np.abs(schedule - b))) for b in wanted]
    return schedule, indices
