"""The RAG service (``python -m ragops serve``): FastAPI under uvicorn over ``ragops.retrieval``."""

from ragops.serving.app import ServiceState, create_app, serve
from ragops.serving.settings import ServiceSettings, llm_endpoint_from_env

__all__ = ["ServiceSettings", "ServiceState", "create_app", "llm_endpoint_from_env", "serve"]
