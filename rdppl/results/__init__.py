"""The result schema: every ``xarray.DataTree`` rdppl returns is assembled here.

One package, one job per module: :mod:`~rdppl.results.core` (dimensions, attributes,
groups and trees), :mod:`~rdppl.results.curves` (AIS groups),
:mod:`~rdppl.results.trainers` (trainer groups), ``labels`` (variables'
``long_name`` and ``units``), ``select`` (one example and temperature for ArviZ) and
:mod:`~rdppl.results.files` (safe netCDF and Zarr files).

Groups follow arviz-base conventions (built with :func:`arviz_base.dict_to_dataset`):

``rate_distortion``
    ``rate``, ``distortion``, ``log_z`` over ``(example, beta)``; coordinate ``beta``.
``sample_stats``
    ``acceptance_rate``, ``step_size``, ``importance_ess``, ``pareto_khat``,
    ``num_divergent``, ``num_nonfinite`` over ``(example, beta)``.
``posterior``, ``weighted_posterior``
    Equal-weight draws over ``(chain, draw, example, beta, ...)``, ArviZ's sample
    dims first (attribute ``sample_dims = ["chain", "draw"]``, the only group with
    one); the weighted AIS chains over ``(example, beta, ais_chain, ...)``.
``observed_data``
    The data, over ``(example, *observed dims)``.
``bdmc``, ``log_marginal_likelihood``, ``variational``, ``echo``
    Added by the estimators of those names, with the same ``example`` and ``beta``
    dimensions.

Attributes must survive ``to_netcdf``, so :func:`netcdf_attrs` turns booleans, ``None``
and containers into numbers and strings (except ``sample_dims``, a list of str that
rdppl's files keep). rdppl's own variables carry ``long_name`` and ``units``.
"""

from rdppl.results.core import *  # noqa: F403
from rdppl.results.core import __all__ as _core
from rdppl.results.curves import *  # noqa: F403
from rdppl.results.curves import __all__ as _curves
from rdppl.results.files import *  # noqa: F403
from rdppl.results.files import __all__ as _files
from rdppl.results.labels import *  # noqa: F403
from rdppl.results.labels import __all__ as _labels
from rdppl.results.select import *  # noqa: F403
from rdppl.results.select import __all__ as _select
from rdppl.results.trainers import *  # noqa: F403
from rdppl.results.trainers import __all__ as _trainers

__all__ = [*_core, *_curves, *_files, *_labels, *_select, *_trainers]
