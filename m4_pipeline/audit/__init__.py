"""Dataset audit: mergeable statistics, comparison with the published counts, a static HTML report.

Plain Python (no Ray): the executor or a CLI command distributes :func:`stats.compute_stats`
per shard and merges the results with :meth:`stats.Stats.merge`.
"""

from .compare import ComparisonRow, compare, format_comparison
from .stats import Stats, compute_stats, fold_run_logs, new_stats, stats_for_samples
from .targets import Targets, load_targets
from .writers import read_stats, write_stats

__all__ = [
    "ComparisonRow",
    "Stats",
    "Targets",
    "compare",
    "compute_stats",
    "fold_run_logs",
    "format_comparison",
    "load_targets",
    "new_stats",
    "read_stats",
    "stats_for_samples",
    "write_stats",
]
