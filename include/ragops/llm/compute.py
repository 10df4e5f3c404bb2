"""Where train_llm.py runs: a GPU pod (the LLM trainer image) or a local process, with the same arguments.

``--output-dir`` is the trainer's scratch folder on whatever machine runs it (the same path in a pod
and on a worker: a fresh one starts empty). Everything that must survive the process (checkpoints,
the adapter, metrics.json) is mirrored to ``--checkpoint-uri``,
the run's content-addressed location in the artifact store, so a retried task, a restarted pod or
another worker resumes from the newest complete checkpoint there.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ragops.training.compute import PodTrainer, TrainingConfig
from ragops.vocabulary import TRAINING_VARIABLE, Compute

log = logging.getLogger(__name__)

ENTRYPOINT = Path(__file__).resolve().parents[1] / "training" / "train_llm.py"
# docker/Dockerfile.llm-trainer puts train_llm.py here; its image is TrainingConfig.llm_image.
LLM_TRAINER = PodTrainer("train-llm", "/opt/ragops/train_llm.py", image_field="llm_image")
WORK_DIR = "/tmp/ragops-llm-runs"         # trainers' scratch folders (a pod's disk goes with the pod)
# Test hook: with this set to a flag file's path, the first local run (no flag file yet) is killed with
# SIGKILL as soon as the mirror holds a complete checkpoint, as a preempted node would kill it; the
# flag file is then written, so Airflow's retry runs to the end and must resume, not restart.
KILL_ONCE_ENV = "RAGOPS_TEST_KILL_LLM_TRAINER_ONCE"


def llm_compute_fallbacks(config: TrainingConfig) -> list[dict[str, str]]:
    """The named fallback of a run whose LLM trainer runs in a local process instead of a GPU pod."""
    if config.compute != Compute.LOCAL:
        return []
    return [{"service": "Kubernetes GPU pod", "using": "a local process running train_llm.py (no QLoRA without CUDA)",
             "reason": f"{TRAINING_VARIABLE}'s compute is 'local'"}]


def local_command(args: Sequence[str]) -> list[str]:
    return [sys.executable, str(ENTRYPOINT), *args]


def _complete_checkpoint_in(mirror: Path) -> bool:
    return any((p / "checkpoint_complete.json").exists() for p in (mirror / "checkpoints").glob("checkpoint-*"))


def run_local(args: Sequence[str], *, mirror_dir: Path | None = None, env: Mapping[str, str] | None = None,
              logger: logging.Logger | None = None) -> dict[str, Any]:
    """Runs train_llm.py in a child process, streaming its output to ``logger``; returns the metrics it
    prints last, or raises with the output's tail (a kill included: the task's retry resumes)."""
    logger = logger or log
    cmd = local_command(args)
    logger.info("training the LLM locally: %s", " ".join(cmd[1:]))
    child_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    flag = os.environ.get(KILL_ONCE_ENV)
    kill_once = bool(flag and mirror_dir is not None and not Path(flag).exists())
    tail: deque[str] = deque(maxlen=40)
    result: dict[str, Any] = {}
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=child_env,
                          bufsize=1) as proc:
        if kill_once:
            threading.Thread(target=_kill_after_checkpoint, args=(proc, Path(str(mirror_dir)), Path(str(flag))),
                             daemon=True).start()
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail.append(line)
            logger.info("[trainer] %s", line)
            if line.startswith('{"train_llm"'):
                result = json.loads(line)["train_llm"]
        code = proc.wait()
    if code != 0:
        raise RuntimeError(f"train_llm.py exited with {code}; last lines:\n" + "\n".join(tail))
    return result


def _kill_after_checkpoint(proc: subprocess.Popen[str], mirror: Path, flag: Path) -> None:
    while proc.poll() is None:
        if _complete_checkpoint_in(mirror):
            log.warning("test hook %s: killing the trainer (pid %d) after its first mirrored checkpoint",
                        KILL_ONCE_ENV, proc.pid)
            flag.write_text(str(proc.pid))
            proc.send_signal(signal.SIGKILL)
            return
        time.sleep(0.01)
