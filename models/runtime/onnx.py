"""onnxruntime on the CPU: the backend wherever there is no NPU, and the reference for others."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

# A 2000 px photo's detector canvas (1504x1984x3 = 9.0M values) keeps its buffers; only larger
# inputs (flat strips enlarged to 736x4000+) give theirs back after the run.
SHRINK_ABOVE = 3 * 1536 * 2048


class OnnxSession:
    """CPUExecutionProvider session tuned for one request at a time per worker process."""

    def __init__(
        self,
        path: Path,
        threads: int | None = None,
        *,
        arena: bool = True,
        spinning: bool = False,
        shrink_above: int | None = SHRINK_ABOVE,
    ) -> None:
        """``arena`` and ``spinning`` are speed settings, measured in benchmarks/bench_ocr.py
        (BENCHMARKS.md): the memory arena reuses buffers between operators instead of asking
        the system for every activation (the OCR detector runs markedly faster); busy-waiting
        intra-op threads only steal the cores sibling workers are using (slower with 2 threads
        on a shared machine). The arena would keep the largest input's buffers for good,
        so after a run whose inputs hold more than ``shrink_above`` values it hands back what
        that run grew (None: never)."""
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
        self._shrink_above = shrink_above if arena else None
        self._shrink = ort.RunOptions()
        self._shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    @property
    def input_names(self) -> list[str]:
        return list(self._inputs)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        big = self._shrink_above is not None and (
            sum(a.size for a in feeds.values()) > self._shrink_above
        )
        return list(self._session.run(None, feeds, self._shrink if big else None))

    def metadata(self) -> dict[str, str]:
        return dict(self._session.get_modelmeta().custom_metadata_map)
