"""Layer 3, the sampler: AIS over a traced program, compiled and vectorised.

Kernels (:mod:`~rdppl.sampler.kernels`) and their adaptation
(:mod:`~rdppl.sampler.adaptation`); one AIS transition (:mod:`~rdppl.sampler.ais`);
compiled segments of the temperature path (:mod:`~rdppl.sampler.segments`) run in
batches by :mod:`~rdppl.sampler.runner`; the preliminary/reported protocol
(:mod:`~rdppl.sampler.protocol`); devices, memory checks, checkpoints and their
fingerprints. It imports :mod:`rdppl.program`, :mod:`rdppl.results` (files, for
checkpoints) and :mod:`rdppl.numerics`, never an entry point.
"""
