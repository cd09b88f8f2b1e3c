"""Where one ``rd_curve`` call's time goes, without editing rdppl.

:func:`profile_call` runs a function once (after ``jax.clear_caches()`` when
``cold``) with timers wrapped around the parts of ``rd_curve`` (module attributes
are replaced for the call and restored after it) and a ``jax.monitoring`` listener
that attributes JAX's compilation (tracing to a jaxpr, lowering to MLIR, the XLA
backend compile) to the innermost timed part. It returns the parts as a tree:
inclusive seconds, self seconds (minus the timed parts inside), compilation seconds
and calls. The timers block on ``init_from_prior``'s result (so its execution is
counted there rather than in the first segment); everything else runs as it does
untimed. Used by ``benchmarks/ais_overhead.py --profile`` and ``benchmarks/gpu.py``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import jax
from jax import monitoring

import rdppl.rd
import rdppl.results
from rdppl.sampler import protocol, runner, segments

# (module, attribute, label); a label may be a function of the call's arguments
PARTS: list[tuple[Any, str, Any]] = [
    (rdppl.rd, "validate_run_settings", "validation"),
    (rdppl.rd, "validate_schedule", "validation"),
    (rdppl.rd, "validate_protocol_options", "validation"),
    (rdppl.rd, "validate_devices", "validation"),
    (rdppl.rd, "prepare_model", "prepare_model (eager trace, data checks)"),
    (rdppl.rd, "_check_memory", "memory check"),
    (rdppl.rd, "open_store", "checkpoint store"),
    (rdppl.rd, "note_program", "note_program (recompilation watch)"),
    (protocol, "forward", "protocol.forward"),
    (protocol, "init_from_prior", "init_from_prior (prior draw)"),
    (
        protocol,
        "run_path",
        lambda *a, **k: f"run_path: {k.get('label') or 'AIS'}",
    ),
    (protocol, "look_ahead", "look_ahead"),
    (protocol, "_tuned_schedule", "tuned schedule"),
    (protocol, "interpolate_tuning", "interpolate tuning"),
    (segments, "segment_inputs", "segment_inputs (host arrays to device)"),
    (segments, "run_segment", "run_segment (compile, execute)"),
    (segments, "finish", "finish (last increment: compile, execute)"),
    (runner, "fetch", "fetch (copy to host)"),
    (runner, "collect", "collect (records on the host)"),
    (rdppl.results, "rate_distortion_group", "result groups"),
    (rdppl.results, "sample_stats_group", "result groups"),
    (rdppl.results, "observed_group", "result groups"),
    (rdppl.results, "run_attrs", "result groups"),
    (rdppl.rd, "finished_tree", "finished_tree (DataTree, check_result)"),
]
BLOCKING = {"init_from_prior", "run_segment", "finish"}
COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)


class _Recorder:
    def __init__(self) -> None:
        self.stack: list[str] = []
        self.parts: dict[tuple[str, ...], dict[str, float]] = {}
        self.order: dict[tuple[str, ...], int] = {}
        self.active = False

    def part(self, path: tuple[str, ...]) -> dict[str, float]:
        return self.parts.setdefault(
            path, {"seconds": 0.0, "compile_seconds": 0.0, "calls": 0}
        )

    def on_event(self, event: str, seconds: float, **_: Any) -> None:
        if self.active and event in COMPILE_EVENTS:
            self.part(tuple(self.stack))["compile_seconds"] += seconds


_RECORDER = _Recorder()
_LISTENING = [False]


def _timed(original: Callable, label: Any, block: bool) -> Callable:
    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        name = label(*args, **kwargs) if callable(label) else label
        _RECORDER.stack.append(name)
        path = tuple(_RECORDER.stack)
        _RECORDER.order.setdefault(path, len(_RECORDER.order))
        start = time.perf_counter()
        try:
            value = original(*args, **kwargs)
            if block:
                value = jax.block_until_ready(value)
            return value
        finally:
            part = _RECORDER.part(path)
            part["seconds"] += time.perf_counter() - start
            part["calls"] += 1
            _RECORDER.stack.pop()

    return wrapper


def profile_call(function: Callable[[], Any], *, cold: bool) -> dict[str, Any]:
    """Run ``function`` once with rd_curve's parts timed; see the module docstring."""
    if not _LISTENING[0]:
        monitoring.register_event_duration_secs_listener(_RECORDER.on_event)
        _LISTENING[0] = True
    if cold:
        jax.clear_caches()
    originals = []
    for module, attribute, label in PARTS:
        original = getattr(module, attribute, None)
        if original is None:  # another version of rdppl: time what exists
            continue
        originals.append((module, attribute, original))
        setattr(module, attribute, _timed(original, label, attribute in BLOCKING))
    _RECORDER.parts, _RECORDER.stack = {}, ["rd_curve call"]
    _RECORDER.order = {("rd_curve call",): 0}
    _RECORDER.active = True
    start, start_cpu = time.perf_counter(), time.process_time()
    try:
        jax.block_until_ready(function())
    finally:
        total = time.perf_counter() - start
        total_cpu = time.process_time() - start_cpu
        _RECORDER.active = False
        for module, attribute, original in reversed(originals):
            setattr(module, attribute, original)
    root = _RECORDER.part(("rd_curve call",))
    root["seconds"], root["calls"] = total, 1
    parts = []
    order = _RECORDER.order

    def position(path: tuple[str, ...]) -> tuple[int, ...]:
        # a part's children follow it, in the order they were first entered
        return tuple(order.get(path[: i + 1], len(order)) for i in range(len(path)))

    for path, values in sorted(_RECORDER.parts.items(), key=lambda p: position(p[0])):
        children = sum(
            v["seconds"]
            for p, v in _RECORDER.parts.items()
            if len(p) == len(path) + 1 and p[: len(path)] == path
        )
        parts.append(
            {
                "path": list(path),
                "seconds": values["seconds"],
                "self_seconds": values["seconds"] - children,
                "compile_seconds": values["compile_seconds"],
                "calls": int(values["calls"]),
            }
        )
    return {
        "cold": cold,
        "total_seconds": total,
        "total_cpu_seconds": total_cpu,
        "compile_seconds": sum(p["compile_seconds"] for p in parts),
        "parts": parts,
    }


def print_profile(profiles: dict[str, dict[str, Any]]) -> None:
    """Print each profile's tree (inclusive, self and compilation seconds)."""
    for name, profile in profiles.items():
        print(
            f"  {name} call: {profile['total_seconds']:.2f} s, of which JAX "
            f"compilation {profile['compile_seconds']:.2f} s"
        )
        print(
            f"    {'part':<58} {'incl. s':>8} {'self s':>8} {'compile s':>9} "
            f"{'calls':>5}"
        )
        for part in profile["parts"]:
            depth = len(part["path"]) - 1
            label = "  " * depth + part["path"][-1]
            print(
                f"    {label:<58} {part['seconds']:>8.3f} {part['self_seconds']:>8.3f} "
                f"{part['compile_seconds']:>9.3f} {part['calls']:>5}"
            )
