"""The Airflow side of training: the Variable ``ragops_training`` and the GPU pod's operator.

The logic package describes the pod as plain data (``ragops.training.compute.pod_spec``); this
module reads the configuration from Airflow and renders that description as a
KubernetesPodOperator, run inside the ``train`` task so that the pod and the local process share
the task's retries, checkpoints and skip-if-finished check.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ragops.training.compute import EMBEDDINGS_TRAINER, PodTrainer, TrainingConfig, compute_fallbacks, pod_spec
from ragops.vocabulary import TRAINING_VARIABLE, Compute

if TYPE_CHECKING:
    from ragops.orchestration.runtime import TaskRuntime
    from ragops.training.params import FinetuneParams


def load_config(compute_override: str | None = None) -> TrainingConfig:
    """The training configuration from the Airflow Variable (``compute`` overridable per run)."""
    from ragops.orchestration.connections import variable

    return TrainingConfig.from_value(variable(TRAINING_VARIABLE), compute_override=compute_override or None)


def training_fallbacks(rt: TaskRuntime, params: FinetuneParams) -> list[dict[str, str]]:
    """``run_opener``'s extra fallbacks: a local process standing in for the GPU pod."""
    return compute_fallbacks(load_config(params.compute))


def pod_operator(task_id: str, config: TrainingConfig, args: Sequence[str],
                 trainer: PodTrainer = EMBEDDINGS_TRAINER, **kwargs: Any) -> Any:
    """A KubernetesPodOperator running ``trainer``'s entrypoint on a GPU node."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.providers.cncf.kubernetes.secret import Secret
    from kubernetes.client import models as k8s

    spec = pod_spec(config, args, trainer)
    secrets = [Secret("env", s["env"], s["secret"], s["key"]) for s in spec.secret_env]
    secrets += [Secret("env", None, name) for name in spec.secret_env_from]
    tolerations = [k8s.V1Toleration(key=t.get("key"), operator=t.get("operator", "Equal"), value=t.get("value"),
                                    effect=t.get("effect"), toleration_seconds=t.get("toleration_seconds"))
                   for t in spec.tolerations]
    return KubernetesPodOperator(
        task_id=task_id,
        name=spec.name,
        namespace=spec.namespace,
        kubernetes_conn_id=spec.kubernetes_conn_id,
        image=spec.image,
        cmds=list(spec.cmds),
        arguments=list(spec.arguments),
        env_vars=[k8s.V1EnvVar(name=k, value=v) for k, v in spec.env.items()],
        secrets=secrets,
        container_resources=k8s.V1ResourceRequirements(requests=dict(spec.requests), limits=dict(spec.limits)),
        node_selector=dict(spec.node_selector) or None,
        tolerations=tolerations or None,
        service_account_name=spec.service_account,
        labels=dict(spec.labels),
        image_pull_policy="IfNotPresent",
        startup_timeout_seconds=spec.startup_timeout_seconds,
        reattach_on_restart=True,  # a retried task follows the running pod instead of starting another
        get_logs=True,
        on_finish_action="delete_succeeded_pod",  # a failed pod stays for inspection
        **kwargs,
    )


def pod_runner(rt: TaskRuntime, trainer: PodTrainer = EMBEDDINGS_TRAINER) -> Callable[[Sequence[str]], None]:
    """What the ``train`` step calls to run the entrypoint in a GPU pod: the operator, executed
    within this task (configured from the Variable when it runs, not when the DAG is parsed)."""

    def run(args: Sequence[str]) -> None:
        pod_operator("train_pod", load_config(Compute.KUBERNETES), args, trainer).execute(rt.context)

    return run
