"""Every script a pod runs (`python /opt/ragops/<script>`) is copied into the image that pod uses.

A pod spec naming a script its image lacks renders fine and fails only on a real cluster, which
nothing here reaches: this test is where that shows.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ragops.indexing.shard_compute import EMBED_SHARD_POD
from ragops.llm.compute import LLM_TRAINER
from ragops.reranking.registry import RERANKER_TRAINER
from ragops.training.compute import EMBEDDINGS_TRAINER

ROOT = Path(__file__).resolve().parents[2]
IN_IMAGE = "/opt/ragops/"


def copied_scripts(dockerfile: str) -> set[str]:
    """Script names under /opt/ragops/ that the Dockerfile's COPY lines put there, from files that exist."""
    text = (ROOT / "docker" / dockerfile).read_text().replace("\\\n", " ")
    names = set()
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0] != "COPY":
            continue
        sources = [p for p in parts[1:-1] if not p.startswith("--")]
        target = parts[-1]
        for source in sources:
            assert (ROOT / source).is_file(), f"{dockerfile} copies {source}, which does not exist"
            if target.startswith(IN_IMAGE):
                names.add(Path(source).name if target.endswith("/") else Path(target).name)
    return names


# The TrainingConfig field that names a pod's image -> the Dockerfile that builds that image.
IMAGES = {"image": "Dockerfile.trainer", "llm_image": "Dockerfile.llm-trainer"}


@pytest.mark.parametrize("trainer", [EMBEDDINGS_TRAINER, RERANKER_TRAINER, EMBED_SHARD_POD, LLM_TRAINER],
                         ids=lambda t: t.component)
def test_pod_entrypoint_is_in_its_image(trainer):
    assert re.fullmatch(r"/opt/ragops/[\w.]+\.py", trainer.entrypoint_in_image)
    assert Path(trainer.entrypoint_in_image).name in copied_scripts(IMAGES[trainer.image_field])
