"""Side-by-side speed and memory of edgetam-hf, transformers' built-in EdgeTAM and (when it can be
imported) Meta's original `sam2` package. Entry point: `python -m benchmarks.run --help`."""
