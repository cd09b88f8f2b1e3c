"""MCMC moves for AIS: any BlackJAX kernel, with HMC and NUTS as named defaults.

A kernel here is a small frozen configuration (hashable, so it is a static argument of
compiled functions) around a BlackJAX step with the usual signature
``step(rng_key, state, logdensity_fn, step_size, **parameters) -> (state, info)``.
For these the AIS loop recomputes the log density and its gradient after each
temperature change and builds the BlackJAX state from them
(:meth:`MCMCKernel.transition`); rdppl's :class:`HMC` integrates with the log prior's
and the distortion's gradients apart and hands its :class:`~.base.Evaluation` on
across temperature changes (:meth:`MCMCKernel.cached_transition`).

BlackJAX (which imports Optax) is imported when a kernel is first built, not when
rdppl is imported. One kernel per module: :mod:`~rdppl.sampler.kernels.base` (the
interface), :mod:`~rdppl.sampler.kernels.hmc`, :mod:`~rdppl.sampler.kernels.nuts` and
:mod:`~rdppl.sampler.kernels.blackjax_kernel`. Step sizes follow Huang et al. (2020,
App. C.3; docs/math.md §3): a preliminary run adapts a step size per example with
the ``(init, update)`` pair of :func:`rdppl.sampler.adaptation.step_size_adaptation`
and records it at every temperature; the reported run replays the recorded values,
frozen.
"""

from rdppl.sampler.kernels.base import MCMCKernel, TransitionInfo
from rdppl.sampler.kernels.blackjax_kernel import BlackJAXKernel
from rdppl.sampler.kernels.hmc import HMC, default_kernel
from rdppl.sampler.kernels.nuts import NUTS

__all__ = [
    "HMC",
    "NUTS",
    "BlackJAXKernel",
    "MCMCKernel",
    "TransitionInfo",
    "default_kernel",
]
