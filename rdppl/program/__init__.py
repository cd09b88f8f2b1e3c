"""Layer 2, the user's NumPyro program: what rdppl knows about a model.

:mod:`~rdppl.program.decorator` (:func:`rdppl.model`, :class:`rdppl.Model`,
:class:`rdppl.TracedModel`), :mod:`~rdppl.program.sites` (latent and observed sites),
:mod:`~rdppl.program.tracing` (:func:`rdppl.trace_model`: a program becomes a
flat-vector density), :mod:`~rdppl.program.data` (checks of the examples),
:mod:`~rdppl.program.decoders` (:func:`rdppl.decoder_model`) and
:mod:`~rdppl.program.recompile` (:class:`rdppl.RecompilationWarning`). It imports
only :mod:`rdppl.numerics`; samplers and entry points build on it.
"""
