"""EdgeTAM as ExecuTorch programs (`.pte`, XNNPACK delegate), run by ExecuTorch's Python runtime.

`edgetam-hf export MODEL --format executorch --out FOLDER [--quantize int8]` writes the same graphs
as the ONNX export (the same `nn.Module` wrappers, traced on the same samples) with the same
`manifest.json`, marked `"runtime": "executorch"`; `OnnxImagePredictor(FOLDER)` runs them, each
program behind `ExecuTorchGraph`, which has onnxruntime's `InferenceSession.run` call shape.
Needs the `executorch` package (docs/export.md, "ExecuTorch": its own environment).
"""
