"""onnxruntime on the CPU: the backend wherever there is no NPU, and the reference for others."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort


class OnnxSession:
    """CPUExecutionProvider session tuned for one request at a time per worker process."""

    def __init__(
        self,
        path: Path,
        threads: int | None = None,
        *,
        arena: bool = True,
        spinning: bool = False,
    ) -> None:
        """``arena`` and ``spinning`` are speed settings, measured in benchmarks/bench_ocr.py
        (BENCHMARKS.md): the memory arena reuses buffers between operators instead of asking
        the system for every activation (the OCR detector runs ~20% faster); busy-waiting
        intra-op threads only steal the cores sibling workers are using (~20% slower with 2
        threads on a shared machine). The arena keeps the largest input's buffers for good:
        bounded here, since OCR canvases are capped (models/ocr/pipeline.py)."""
        opts = ort.SessionOptions()
        # Workers run jobs one after another; parallelism comes from the worker count, so operators
        # run sequentially and only intra-op threads are spent (None: onnxruntime picks the count).
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.inter_op_num_threads = 1
        if threads is not None:
            opts.intra_op_num_threads = threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.enable_cpu_mem_arena = arena
        if not spinning:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self._inputs = [i.name for i in self._session.get_inputs()]

    @property
    def input_names(self) -> list[str]:
        return list(self._inputs)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return list(self._session.run(None, feeds))

    def metadata(self) -> dict[str, str]:
        return dict(self._session.get_modelmeta().custom_metadata_map)
