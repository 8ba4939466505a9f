"""Export: ONNX (checked with onnx.checker and onnxruntime) and torch.export programs."""

from cnnzoo.export.onnx import (
    ExportError,
    ExportResult,
    MissingDependency,
    export_onnx,
    read_onnx_metadata,
    require_onnx,
    run_metadata,
)
from cnnzoo.export.pt2 import export_pt2, read_pt2_metadata

__all__ = ["ExportError", "ExportResult", "MissingDependency", "export_onnx", "export_pt2",
           "read_onnx_metadata", "read_pt2_metadata", "require_onnx", "run_metadata"]
