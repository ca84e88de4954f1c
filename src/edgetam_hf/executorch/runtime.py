"""`ExecuTorchGraph`: one `.pte` program called as an onnxruntime session is, so that the
predictor and the tracker drive either runtime with the same code (`open_graph` picks one)."""

from pathlib import Path

import numpy as np


class ExecuTorchGraph:
    """A program of an ExecuTorch export folder: `run(None, {input name: array})` -> list of arrays,
    in the manifest's order of inputs and outputs."""

    def __init__(self, path, graph: dict):
        """
        Args:
            path: the `.pte` file.
            graph: its manifest entry (`inputs` and `outputs`, each with a `name`).
        """
        from executorch.runtime import Runtime

        self.path = Path(path)
        self._input_names = [value["name"] for value in graph["inputs"]]
        self._output_names = [value["name"] for value in graph["outputs"]]
        self._method = Runtime.get().load_program(str(self.path)).load_method("forward")

    def run(self, output_names, feeds: dict) -> list[np.ndarray]:
        import torch

        missing = [name for name in self._input_names if name not in feeds]
        if missing:
            raise ValueError(f"{self.path.name}: missing inputs {missing}")
        # The program reads its inputs in the exported order; from_numpy shares the memory.
        outputs = self._method.execute([torch.from_numpy(np.ascontiguousarray(feeds[name])) for name in self._input_names])
        arrays = dict(zip(self._output_names, (output.numpy() for output in outputs), strict=True))
        return [arrays[name] for name in (output_names or self._output_names)]
