"""Ray job entry point: build a recipe on the cluster this job is submitted to.

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python ray_jobs/build.py recipes/demo.yaml --sources /shared/sources --out /shared/shards

``--sources`` and ``--out`` must be paths every node can read and write (a shared filesystem).
Inside a submitted job, RAY_ADDRESS points at the cluster, so the build joins it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the working dir holds m4_pipeline/

from m4_pipeline.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["build", *sys.argv[1:]]))
