"""rknn-toolkit2 behind a few checked calls: version check, build, export, simulator.

The toolkit reports failure three ways (a -1 return, a raised ValueError, or ``None`` from
inference) and prints progress bars and native chatter on both stdout and stderr. Every call
here checks all three, sends the chatter to a log file, and turns failures into ToolkitError
with the operator and node names pulled out of the messages, so a user reads "unsupported
operator Random ('noise')" instead of a traceback from compiled code.

Built models are cached per process by their plan: the converter's self-check and the
simulator backend then run the very object that was exported, and tests build each model once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from models.runtime.artifacts import BuildPlan

TESTED_VERSION = "2.5.0"
INSTALL = (
    "install it as `make toolkit` does: pip install torch==2.13.0, then pip install --no-deps "
    f"rknn-toolkit2=={TESTED_VERSION} and its dependencies (README: RKNN (NPU) status)"
)
# Messages of rknn-toolkit2 2.5.0 naming an operator it cannot build: (operator, node).
_REJECTED = (
    re.compile(r"input \d+ of (\w+)\('([^']*)'\) need to be constant"),
    re.compile(r"Found (\w+) node '([^']*)', which is not supported"),
)
TOOLKIT_LOGGER = "rknnLogger"  # rknn-toolkit2's logging.Logger
_CPU_FALLBACK = re.compile(r"No lowering found for: (\S+), node type = (\w+)")


class ToolkitError(RuntimeError):
    """rknn-toolkit2 is missing, the wrong version, or failed; the message says what to do."""


class UnsupportedOperator(ToolkitError):
    """The toolkit cannot build a graph holding these operators."""

    def __init__(self, message: str, operators: list[str]) -> None:
        super().__init__(message)
        self.operators = operators


def toolkit_version() -> tuple[str, list[str]]:
    """The installed rknn-toolkit2 version and warnings; ToolkitError when unusable."""
    try:
        found = metadata.version("rknn-toolkit2")
    except metadata.PackageNotFoundError:
        other = [d for d in ("rknn-toolkit", "rknn-toolkit-lite2") if _installed(d)]
        hint = f" ({other[0]} is installed, which cannot convert for RK35xx)" if other else ""
        raise ToolkitError(f"rknn-toolkit2 is not installed{hint}; {INSTALL}") from None
    major = found.split(".")[0]
    if major != TESTED_VERSION.split(".")[0]:
        raise ToolkitError(
            f"rknn-toolkit2 {found} is installed; this converter drives the 2.x API and was "
            f"tested with {TESTED_VERSION}; {INSTALL}"
        )
    warnings = []
    if found != TESTED_VERSION:
        warnings.append(f"rknn-toolkit2 {found} is not the tested {TESTED_VERSION}; the "
                        "self-check still decides whether a model is written")
    return found, warnings


def _installed(dist: str) -> bool:
    try:
        metadata.version(dist)
    except metadata.PackageNotFoundError:
        return False
    return True


@contextlib.contextmanager
def quiet(log_path: Path | None) -> Iterator[Path]:
    """Send the toolkit's output to ``log_path``: fds 1 and 2 (native code), Python's
    sys.stdout/sys.stderr and the toolkit logger's handlers (they may hold other streams, e.g.
    under pytest). None: a temporary file, deleted afterwards (errors quote it before it goes).
    """
    temporary = log_path is None
    if log_path is None:
        handle, name = tempfile.mkstemp(prefix="mtai-rknn-", suffix=".log")
        os.close(handle)
        log_path = Path(name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    streams = sys.stdout, sys.stderr
    handlers = [h for h in logging.getLogger(TOOLKIT_LOGGER).handlers
                if isinstance(h, logging.StreamHandler)]
    try:
        with open(log_path, "a", encoding="utf-8", errors="replace", buffering=1) as sink:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            sys.stdout = sys.stderr = sink
            previous = [h.setStream(sink) for h in handlers]
            try:
                yield log_path
            finally:
                for h, stream in zip(handlers, previous):
                    h.setStream(stream)
                sys.stdout, sys.stderr = streams
                sink.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        os.close(saved[0])
        os.close(saved[1])
        if temporary:
            log_path.unlink(missing_ok=True)


def _log_tail(path: Path, start: int, lines: int = 12) -> str:
    """What the toolkit wrote since offset ``start``, progress bars and colours removed."""
    with open(path, "rb") as fh:
        fh.seek(start)
        text = fh.read().decode("utf-8", "replace")
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    kept = [ln for ln in text.splitlines() if ln.strip() and "it/s]" not in ln]  # no bars
    return "\n".join(kept[-lines:])


def _since(path: Path, start: int) -> str:
    with open(path, "rb") as fh:
        fh.seek(start)
        return re.sub(r"\x1b\[[0-9;]*m", "", fh.read().decode("utf-8", "replace"))


@dataclass
class Built:
    """A model built in this process: the toolkit object, and what the build said."""

    plan: BuildPlan
    rknn: Any
    seconds: float
    cpu_operators: list[str] = field(default_factory=list)  # no NPU lowering: run on the CPU
    simulating: bool = False
    users: int = 0  # simulator sessions using it (see let_go)


_BUILT: dict[str, Built] = {}


def build(plan: BuildPlan, onnx_path: Path, log_path: Path | None = None) -> Built:
    """Build ``plan`` from ``onnx_path`` (fp16, no quantisation), or return this process's build."""
    cached = _BUILT.get(plan.key())
    if cached is not None:
        return cached
    toolkit_version()
    from rknn.api import RKNN

    started = time.monotonic()
    if plan.simplify:
        onnx_path = simplified(onnx_path, plan.onnx_sha256)
    with quiet(log_path) as logfile:
        offset = logfile.stat().st_size
        rknn = RKNN(verbose=False)
        try:
            _call(rknn.config, logfile, offset, "config", **_config(plan))
            _call(rknn.load_onnx, logfile, offset, "load_onnx", model=str(onnx_path),
                  **_inputs(plan))
            _call(rknn.build, logfile, offset, "build", do_quantization=False)
        except BaseException:
            rknn.release()
            raise
        said = _since(logfile, offset)
    fallback = sorted({f"{op} ({node})" for node, op in _CPU_FALLBACK.findall(said)})
    built = Built(plan, rknn, time.monotonic() - started, fallback)
    _BUILT[plan.key()] = built
    return built


_SIMPLIFIED: dict[str, Path] = {}


def simplified(onnx_path: Path, digest: str) -> Path:
    """``onnx_path`` simplified by onnxslim (input shapes left dynamic), once per process; the
    simplified file lives in a temporary directory and is rebuilt from the source if gone."""
    cached = _SIMPLIFIED.get(digest)
    if cached is not None and cached.is_file():
        return cached
    try:
        import onnx
        import onnxslim
    except ImportError as exc:
        raise ToolkitError(f"this model needs onnxslim to convert ({exc}); pip install onnxslim "
                           "(the `convert` extra)") from exc
    target = Path(tempfile.mkdtemp(prefix="mtai-slim-")) / f"{onnx_path.stem}.slim.onnx"
    with quiet(None):
        model = onnxslim.slim(onnx.load(str(onnx_path)))
    onnx.save(model, str(target))
    _SIMPLIFIED[digest] = target
    return target


def _config(plan: BuildPlan) -> dict[str, Any]:
    options: dict[str, Any] = {"target_platform": plan.target, "float_dtype": "float16"}
    if plan.mean_values is not None:
        options["mean_values"] = [list(plan.mean_values)]
        options["std_values"] = [list(plan.std_values or ())]
    if len(plan.shapes) > 1:
        options["dynamic_input"] = [[list(shape)] for shape in plan.shapes]
    return options


def _inputs(plan: BuildPlan) -> dict[str, Any]:
    if len(plan.shapes) > 1:
        return {}  # dynamic_input names the shapes; the graph's own input is used as is
    return {"inputs": [plan.input_name], "input_size_list": [list(plan.shapes[0])]}


def _call(method: Any, logfile: Path, offset: int, name: str, **kwargs: Any) -> None:
    """Run one toolkit step; raise ToolkitError (UnsupportedOperator when it names one)."""
    try:
        ret = method(**kwargs)
        error = None if ret == 0 else f"returned {ret}"
    except Exception as exc:  # the toolkit raises ValueError from compiled code
        text = str(exc).strip()
        error = text.splitlines()[-1] if text else type(exc).__name__
        said = text
    else:
        said = ""
    if error is None:
        return
    said = _since(logfile, offset) + "\n" + said
    found = [m for pattern in _REJECTED for m in pattern.findall(said)]
    tail = _log_tail(logfile, offset)
    if found:
        ops = sorted({op for op, _ in found})
        nodes = ", ".join(sorted({f"{op} ('{node}')" for op, node in found}))
        raise UnsupportedOperator(
            f"rknn-toolkit2 cannot convert this graph: unsupported operator {nodes}", ops
        )
    raise ToolkitError(f"rknn-toolkit2 {name} failed ({error}); the toolkit said:\n{tail}")


def export(built: Built, path: Path, log_path: Path | None = None) -> None:
    """Write the built model to ``path``."""
    with quiet(log_path) as logfile:
        _call(built.rknn.export_rknn, logfile, logfile.stat().st_size, "export_rknn",
              export_path=str(path))
    if not path.is_file() or path.stat().st_size == 0:
        raise ToolkitError(f"rknn-toolkit2 export_rknn reported success but wrote no {path}")


def simulator(plan: BuildPlan, onnx_path: Path, log_path: Path | None = None) -> Any:
    """The toolkit object of ``plan`` with its x86 simulator runtime initialised; each call
    is one user of the shared build until it calls ``let_go``."""
    built = build(plan, onnx_path, log_path)
    if not built.simulating:
        with quiet(log_path) as logfile:
            _call(built.rknn.init_runtime, logfile, logfile.stat().st_size, "init_runtime")
        built.simulating = True
    built.users += 1
    return built.rknn


def let_go(plan: BuildPlan) -> None:
    """One user of ``plan``'s simulator is done; the last one gives the build's memory back."""
    built = _BUILT.get(plan.key())
    if built is not None:
        built.users -= 1
        if built.users <= 0:
            forget(plan)


def infer(rknn: Any, inputs: list[Any], data_format: list[str] | None) -> list[Any]:
    """One simulator run; ToolkitError instead of None or a raised ValueError."""
    try:
        with quiet(None):
            outputs = rknn.inference(inputs=inputs, data_format=data_format)
    except Exception as exc:
        raise ToolkitError(f"rknn-toolkit2 simulator inference failed: {exc}") from exc
    if outputs is None:
        raise ToolkitError("rknn-toolkit2 simulator inference returned None")
    return list(outputs)


def forget(plan: BuildPlan | None = None) -> None:
    """Release cached builds (all, or one plan's) to give their memory back."""
    keys = list(_BUILT) if plan is None else [plan.key()]
    for key in keys:
        built = _BUILT.pop(key, None)
        if built is not None:
            with quiet(None):
                built.rknn.release()
