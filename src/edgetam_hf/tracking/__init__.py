"""The tracker's rules, written once in plain Python / NumPy types (no torch, no transformers):
which memories and object pointers a frame reads, prompts and corrections, consolidation of
prompted frames, placeholders, clear / remove / reset, bounded forgetting and its errors, and
the results each object keeps. Tensors are opaque here: a backend (`TrackingBackend`) does the
tensor work, the PyTorch session (`edgetam_hf.video`) and the onnxruntime tracker
(`edgetam_hf.onnx.video_tracker`) are two such backends."""
