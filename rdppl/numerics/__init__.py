"""Layer 0, numerics: formulas that know nothing of models, samplers or files.

:mod:`~rdppl.numerics.estimators` (log-mean-exp, importance ESS, AIS and RD
estimators), :mod:`~rdppl.numerics.analytic` (closed forms the tests check against),
:mod:`~rdppl.numerics.schedules` (temperature schedules) and
:mod:`~rdppl.numerics.diagnostics` (Pareto k-hat and the checks behind
:class:`rdppl.RDWarning`). Public as ``rdppl.estimators``, ``rdppl.analytic``,
``rdppl.schedules`` and ``rdppl.diagnostics``.
"""
