"""m4-pipeline: build multimodal interleaved instruction-tuning datasets from their raw sources."""

__version__ = "0.1.0"
