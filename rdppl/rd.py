"""``rd_curve``: the whole rate-distortion curve of a model from one AIS run."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import numpy as np
import xarray as xr

from rdppl import results, runner
from rdppl.kernels import HMC, NUTS
from rdppl.model import Model, ModelSpec, ModelStructure, as_model_spec
from rdppl.schedules import validate_schedule
from rdppl.validation import (
    validate_count,
    validate_data,
    validate_kernel,
    validate_rng_key,
)

__all__ = ["rd_curve", "prepare"]

Distortion = str | Callable[[jax.Array, jax.Array], jax.Array]


def prepare(
    model: Model | Callable[..., Any],
    data: Any,
    *,
    distortion: Distortion,
    observed: str | None,
    reconstruction: str | None,
    model_args: Sequence[Any],
    model_kwargs: Mapping[str, Any] | None,
) -> tuple[ModelSpec, ModelStructure, jax.Array, tuple, dict]:
    """Validate a model and its data eagerly (shared by every public estimator)."""
    spec = as_model_spec(
        model,
        distortion=distortion,
        observed=observed,
        reconstruction=reconstruction,
    )
    data = validate_data(data)
    model_args = tuple(model_args)
    model_kwargs = dict(model_kwargs or {})
    structure = spec.inspect(data[0], model_args, model_kwargs)
    return spec, structure, data, model_args, model_kwargs


def distortion_name(distortion: Distortion) -> str:
    """A printable name for a distortion (function names for callables)."""
    if isinstance(distortion, str):
        return distortion
    return getattr(distortion, "__qualname__", repr(distortion))


def run_attrs(
    spec: ModelSpec,
    structure: ModelStructure,
    kernel: HMC | NUTS,
    *,
    rng_key: jax.Array,
    num_chains: int,
    betas: np.ndarray,
    wall_time: float,
    num_gradient_evaluations: int,
) -> dict[str, Any]:
    """Settings, provenance and cost of a run, as netCDF-safe attributes."""
    key_data = jax.random.key_data(rng_key) if rng_key.dtype != np.uint32 else rng_key
    return {
        "observed_site": spec.observed,
        "reconstruction_site": spec.reconstruction,
        "distortion": distortion_name(spec.distortion),
        "latent_sites": [site.name for site in structure.latent_sites],
        "num_latent_dimensions": structure.num_latent_dimensions,
        "num_chains": num_chains,
        "num_temperatures": len(betas) - 1,
        "beta_max": float(betas[-1]),
        "kernel": repr(kernel),
        "rng_key": [int(v) for v in np.asarray(key_data).ravel()],
        "wall_time_seconds": wall_time,
        "num_gradient_evaluations": num_gradient_evaluations,
        **results.versions(),
    }


def rd_curve(
    model: Model | Callable[..., Any],
    data: Any,
    *,
    rng_key: jax.Array,
    schedule: Any,
    num_chains: int = 16,
    distortion: Distortion = "nll",
    kernel: HMC | NUTS | None = None,
    observed: str | None = None,
    reconstruction: str | None = None,
    model_args: Sequence[Any] = (),
    model_kwargs: Mapping[str, Any] | None = None,
    chunk_size: int | None = None,
    progress: bool = False,
    bdmc_betas: Sequence[float] | None = None,
    bdmc_num_examples: int = 16,
    devices: Sequence[jax.Device] | None = None,
    posterior_betas: Sequence[float] | None = None,
) -> xr.DataTree:
    """Estimate the rate-distortion curve of a model on data by AIS.

    Every intermediate temperature of one AIS run gives one point of the curve
    (Huang et al., 2020). Examples and chains are vectorised; the loop over
    temperatures is one compiled ``lax.scan`` per segment of ``chunk_size`` steps.

    Parameters
    ----------
    model
        A :func:`rdppl.model`-decorated NumPyro program, or a plain one together with
        ``observed=``. Written for one example.
    data
        Examples with a leading example axis: ``(examples, *observed_shape)``.
    rng_key
        JAX random key.
    schedule
        Inverse temperatures ``0 = beta_0 < ... < beta_K`` (e.g.
        :func:`rdppl.sigmoid_schedule`).
    num_chains
        Independent AIS chains per example.
    distortion
        ``"nll"`` (``-log p(x|z)``), ``"squared_error"`` (``||x - f(z)||^2`` with the
        reconstruction site), or a function ``d(x, x_hat) -> scalar``.
    kernel
        :class:`rdppl.HMC` (default, 20 leapfrog steps) or :class:`rdppl.NUTS`. With
        ``adapt_step_size=True`` (default) a preliminary run adapts and records one
        step size per example and temperature and the reported run replays them.
    observed, reconstruction
        Site names, overriding those given to :func:`rdppl.model`.
    model_args, model_kwargs
        Extra arguments of the program (arrays in them are traced, so new values do
        not recompile).
    chunk_size
        Temperatures per compiled segment (default 256); results are identical for
        any value.
    progress
        Show progress bars.
    bdmc_betas
        If given, certify the curve: a BDMC run on data simulated from the model at
        each of these inverse temperatures is attached as group ``bdmc``.
    bdmc_num_examples
        Simulated examples per BDMC temperature.
    devices
        Shard the examples across these JAX devices (e.g. ``jax.devices()``); the
        number of examples must be a multiple of their number. ``None`` runs on the
        default device.
    posterior_betas
        Keep the weighted chains of the reported run at the schedule temperatures
        nearest to these: groups ``posterior`` (every latent and deterministic site,
        dims ``(example, beta, chain, ...)``) and ``posterior_weights``
        (``log_weight`` and normalised ``weight``, dims ``(example, beta, chain)``).
        The samples are importance-weighted: use the weights in any summary.

    Returns
    -------
    xarray.DataTree
        Groups ``rate_distortion`` (``rate``, ``distortion``, ``log_z`` over
        ``(example, beta)``), ``sample_stats``, ``observed_data`` and, with
        ``bdmc_betas``, ``bdmc``. Attributes record settings, versions, wall time
        and ``num_gradient_evaluations`` (all runs).

    Raises
    ------
    ValueError, TypeError
        For invalid models, data, schedules or settings, naming the culprit.
    """
    start = time.perf_counter()
    rng_key = validate_rng_key(rng_key)
    kernel = validate_kernel(HMC() if kernel is None else kernel)
    num_chains = validate_count(num_chains, "num_chains")
    if chunk_size is not None:
        chunk_size = validate_count(chunk_size, "chunk_size")
    bdmc_num_examples = validate_count(bdmc_num_examples, "bdmc_num_examples")
    betas = validate_schedule(schedule)
    spec, structure, data, model_args, model_kwargs = prepare(
        model,
        data,
        distortion=distortion,
        observed=observed,
        reconstruction=reconstruction,
        model_args=model_args,
        model_kwargs=model_kwargs,
    )
    devices = runner.validate_devices(devices, int(data.shape[0]))
    if bdmc_betas is not None:
        from rdppl.bdmc import validate_bdmc_betas

        runner.validate_devices(devices, bdmc_num_examples)

        bdmc_betas = validate_bdmc_betas(
            spec,
            structure,
            bdmc_betas,
            betas,
            model_args=model_args,
            model_kwargs=model_kwargs,
            example=data[0],
        )
    capture = _capture_indices(posterior_betas, betas)
    run_key, bdmc_key = jax.random.split(rng_key)
    run, _, preliminary_cost = runner.forward(
        spec,
        kernel,
        rng_key=run_key,
        data=data,
        betas=betas,
        num_chains=num_chains,
        model_args=model_args,
        model_kwargs=model_kwargs,
        chunk_size=chunk_size,
        progress=progress,
        devices=devices,
        capture=capture,
    )
    groups = {
        "rate_distortion": curve_dataset(run, betas),
        "sample_stats": sample_stats_dataset(run, betas),
        "observed_data": observed_dataset(spec, data),
    }
    if capture:
        groups.update(
            posterior_groups(spec, run, betas[capture], data, model_args, model_kwargs)
        )
    cost = run.num_gradient_evaluations + preliminary_cost
    if bdmc_betas is not None:
        from rdppl.bdmc import bdmc_tree

        certificate = bdmc_tree(
            spec,
            structure,
            kernel,
            rng_key=bdmc_key,
            betas=bdmc_betas,
            schedule=betas,
            num_examples=bdmc_num_examples,
            num_chains=num_chains,
            model_args=model_args,
            model_kwargs=model_kwargs,
            chunk_size=chunk_size,
            progress=progress,
            template=data[0],
            devices=devices,
        )
        groups["bdmc"] = certificate["bdmc"].to_dataset()
        groups["bdmc_observed_data"] = certificate["observed_data"].to_dataset()
        cost += int(certificate.attrs["num_gradient_evaluations"])
    attrs = run_attrs(
        spec,
        structure,
        kernel,
        rng_key=rng_key,
        num_chains=num_chains,
        betas=betas,
        wall_time=time.perf_counter() - start,
        num_gradient_evaluations=cost,
    )
    attrs["preliminary_gradient_evaluations"] = preliminary_cost
    return results.make_tree(groups, attrs=attrs, name="rd_curve")


def curve_dataset(run: runner.AISRun, betas: np.ndarray) -> xr.Dataset:
    """Group ``rate_distortion`` from an AIS run."""
    from rdppl.estimators import rate_from

    distortion = run.distortion.astype(np.float64)
    log_z = run.log_z.astype(np.float64)
    rate = rate_from(betas[None, :], distortion, log_z)
    return results.curve_group(
        {"rate": rate, "distortion": distortion, "log_z": log_z},
        betas,
        attrs={"units": "nats"},
    )


def sample_stats_dataset(run: runner.AISRun, betas: np.ndarray) -> xr.Dataset:
    """Group ``sample_stats`` from an AIS run."""
    return results.curve_group(
        {
            "acceptance_rate": run.acceptance_rate,
            "step_size": run.step_size,
            "effective_sample_size": run.effective_sample_size,
            "num_divergent": run.num_divergent,
            "num_nonfinite": run.num_nonfinite,
        },
        betas,
    )


def observed_dataset(spec: ModelSpec, data: jax.Array) -> xr.Dataset:
    """Group ``observed_data``: the examples under the observed site's name."""
    values = np.asarray(data)
    dims = (results.EXAMPLE_DIM,) + tuple(
        f"{spec.observed}_dim_{i}" for i in range(values.ndim - 1)
    )
    return results.make_group(
        {spec.observed: values},
        dims={spec.observed: dims},
        coords={results.EXAMPLE_DIM: np.arange(values.shape[0])},
    )


def _capture_indices(
    posterior_betas: Sequence[float] | None, betas: np.ndarray
) -> list[int]:
    """Schedule indices nearest to the requested temperatures (sorted, unique)."""
    if posterior_betas is None:
        return []
    requested = np.atleast_1d(np.asarray(posterior_betas, dtype=np.float64))
    if requested.ndim != 1 or not np.all(np.isfinite(requested)):
        raise ValueError(
            "posterior_betas must be a 1-D list of finite numbers, got "
            f"{posterior_betas!r}"
        )
    outside = requested[(requested < 0) | (requested > betas[-1])]
    if outside.size:
        raise ValueError(
            f"posterior_betas {outside.tolist()} lie outside the schedule "
            f"[0, {betas[-1]}]"
        )
    return sorted({int(np.argmin(np.abs(betas - b))) for b in requested})


@eqx.filter_jit
def _site_values(
    spec: ModelSpec,
    positions: jax.Array,
    data: jax.Array,
    model_args: tuple,
    model_kwargs: Mapping[str, Any],
) -> dict[str, jax.Array]:
    def one(position: jax.Array, example: jax.Array) -> dict[str, jax.Array]:
        return spec.site_values(position, example, model_args, model_kwargs)

    over_chains = jax.vmap(one, in_axes=(0, None))
    over_examples = jax.vmap(over_chains, in_axes=(0, 0))
    return jax.vmap(over_examples, in_axes=(0, None))(positions, data)


def posterior_groups(
    spec: ModelSpec,
    run: runner.AISRun,
    captured_betas: np.ndarray,
    data: jax.Array,
    model_args: tuple,
    model_kwargs: Mapping[str, Any],
) -> dict[str, xr.Dataset]:
    """Groups ``posterior`` and ``posterior_weights`` from captured chains."""
    dtype = jax.numpy.result_type(float)
    values = jax.device_get(
        _site_values(
            spec,
            jax.numpy.asarray(run.captured_position, dtype),
            data,
            model_args,
            model_kwargs,
        )
    )
    # (captures, examples, chains, ...) -> (examples, captures, chains, ...)
    values = {name: np.swapaxes(np.asarray(v), 0, 1) for name, v in values.items()}
    log_weight = np.swapaxes(run.captured_log_weight, 0, 1).astype(np.float64)
    finite = np.all(
        [np.isfinite(v).reshape(v.shape[:3] + (-1,)).all(-1) for v in values.values()],
        axis=0,
    )
    log_weight = np.where(finite, log_weight, -np.inf)
    weight = np.exp(log_weight - np.max(log_weight, axis=-1, keepdims=True))
    weight = weight / weight.sum(-1, keepdims=True)
    leading = (results.EXAMPLE_DIM, results.BETA_DIM, "chain")
    coords = {
        results.EXAMPLE_DIM: np.arange(data.shape[0]),
        results.BETA_DIM: np.asarray(captured_betas, np.float64),
        "chain": np.arange(log_weight.shape[-1]),
    }
    posterior = results.make_group(
        values,
        dims={
            name: leading + tuple(f"{name}_dim_{i}" for i in range(v.ndim - 3))
            for name, v in values.items()
        },
        coords=coords,
    )
    weights = results.make_group(
        {"log_weight": log_weight, "weight": weight},
        dims={"log_weight": leading, "weight": leading},
        coords=coords,
    )
    return {"posterior": posterior, "posterior_weights": weights}
