"""A small extra export target, written as docs/EXTENDING.md says: the run's IMU model as a
``torch.export`` program (``model.pt2``, FP32, dynamic batch), and the engine that runs it.

A new file format needs both halves: a backend class (how the runtime opens and runs the file) behind
:func:`~c3t_edge.backends.register_engine`, and a converter behind
:func:`~c3t_edge.export.targets.register_target`. ``tests/test_export.py`` registers them, exports
with ``--target torch-export`` and loads the file back through ``load_bundle``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from c3t_edge.backends import Engine
from c3t_edge.export.targets import ExportContext, ExportTarget, TargetResult

ENGINE = Engine("torch-export", "_torch_export_target:TorchExportBackend", {"fp32": "model.pt2"})


class TorchExportBackend:
    """Runs a ``torch.export`` program on the CPU: standardised (n, W, C) float32 -> logits (n, n_labels)."""

    def __init__(self, model_path: str | Path, *, threads: int | None = 1):
        import torch

        self._torch = torch
        self.module = torch.export.load(str(model_path)).module()
        self.n_outputs = None  # the program does not say without running it

    def run(self, inputs: np.ndarray) -> np.ndarray:
        with self._torch.no_grad():
            x = self._torch.from_numpy(np.ascontiguousarray(inputs, np.float32))
            return self.module(x).numpy().astype(np.float32, copy=False)


def convert(context: ExportContext) -> TargetResult:
    """Write ``model.pt2``: the IMU model traced by ``torch.export`` with a dynamic batch dimension."""
    import torch

    path = context.files["fp32"]
    context.log(f"exporting {path.name} (torch.export)")
    example = torch.from_numpy(np.ascontiguousarray(context.quant_windows[:2], np.float32))
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(context.model.eval(), (example,), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    return TargetResult(file_details={"fp32": {"torch": torch.__version__}})


TARGET = ExportTarget("torch-export", convert, "model.pt2: the IMU model as a torch.export program (FP32)",
                      engine="torch-export", precisions=("fp32",))
