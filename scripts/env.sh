# Sourced by every script: one place for the local layout (all inside the checkout, all ignored by git).
RAGOPS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export RAGOPS_ROOT
export RAGOPS_LOCAL="${RAGOPS_LOCAL:-$RAGOPS_ROOT/.local}"
export RAGOPS_VENV="${RAGOPS_VENV:-$RAGOPS_ROOT/.venv}"
export RAGOPS_PGPORT="${RAGOPS_PGPORT:-54329}"
export RAGOPS_PGDATA="${RAGOPS_PGDATA:-$RAGOPS_LOCAL/pgdata}"
export RAGOPS_PG_DSN="${RAGOPS_PG_DSN:-postgresql://ragops:ragops@127.0.0.1:$RAGOPS_PGPORT/ragops}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$RAGOPS_LOCAL/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$RAGOPS_ROOT/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$RAGOPS_ROOT/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
export AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG="${AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG:-4}"
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-postgresql+psycopg2://ragops:ragops@127.0.0.1:$RAGOPS_PGPORT/airflow}"
export AIRFLOW__CORE__EXECUTOR="${AIRFLOW__CORE__EXECUTOR:-LocalExecutor}"
export AIRFLOW__LOGGING__LOGGING_LEVEL="${AIRFLOW__LOGGING__LOGGING_LEVEL:-INFO}"
export AIRFLOW__CORE__UNIT_TEST_MODE="${AIRFLOW__CORE__UNIT_TEST_MODE:-False}"
export PYTHONPATH="$RAGOPS_ROOT/include${PYTHONPATH:+:$PYTHONPATH}"
# No model hub here or in most locked-down clusters: models load from package paths or artifact URIs.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export RAGOPS_ARTIFACT_ROOT="${RAGOPS_ARTIFACT_ROOT:-$RAGOPS_LOCAL/artifacts}"
export RAGOPS_VECTOR_DIR="${RAGOPS_VECTOR_DIR:-$RAGOPS_LOCAL/vectors}"
# Local Weaviate and MinIO servers for the tests (scripts/services.sh builds them with `go install`
# at these pinned versions and runs them on 127.0.0.1, data under $RAGOPS_LOCAL). Ports stay clear
# of Postgres (54329) and Airflow (8080). The keys are local development defaults, not secrets.
export RAGOPS_WEAVIATE_VERSION="${RAGOPS_WEAVIATE_VERSION:-v1.35.2}"
export RAGOPS_WEAVIATE_PORT="${RAGOPS_WEAVIATE_PORT:-8079}"
export RAGOPS_WEAVIATE_GRPC_PORT="${RAGOPS_WEAVIATE_GRPC_PORT:-50059}"
export RAGOPS_WEAVIATE_API_KEY="${RAGOPS_WEAVIATE_API_KEY:-ragops-local-dev-key}"
export RAGOPS_WEAVIATE_URL="${RAGOPS_WEAVIATE_URL:-http://127.0.0.1:$RAGOPS_WEAVIATE_PORT}"
export RAGOPS_MINIO_VERSION="${RAGOPS_MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
export RAGOPS_MINIO_PORT="${RAGOPS_MINIO_PORT:-9010}"
export RAGOPS_MINIO_CONSOLE_PORT="${RAGOPS_MINIO_CONSOLE_PORT:-9011}"
export RAGOPS_MINIO_ROOT_USER="${RAGOPS_MINIO_ROOT_USER:-ragops}"
export RAGOPS_MINIO_ROOT_PASSWORD="${RAGOPS_MINIO_ROOT_PASSWORD:-ragops-local-dev-secret}"
export RAGOPS_MINIO_BUCKET="${RAGOPS_MINIO_BUCKET:-ragops}"
export RAGOPS_MINIO_URL="${RAGOPS_MINIO_URL:-http://127.0.0.1:$RAGOPS_MINIO_PORT}"
