"""Layer 5, trained encoders and decoders: Echo, objectives and training loops.

:mod:`~rdppl.encoders.echo` (the Echo noise channel), :mod:`~rdppl.encoders.optimise`
(the optimisation loop), :mod:`~rdppl.encoders.objectives` (losses),
:mod:`~rdppl.encoders.architectures` (encoder and decoder networks),
:mod:`~rdppl.encoders.sweep` and :mod:`~rdppl.encoders.training` (the public
trainers). Built on the entry point :func:`rdppl.variational_bounds`.
"""
