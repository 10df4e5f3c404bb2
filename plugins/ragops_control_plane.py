"""Airflow plugin: the RAG control plane inside the Airflow UI.

Registers the control plane's FastAPI app (``ragops.control_plane.app``: server-rendered pages of
the lineage registry, and actions that trigger the ragops DAGs through Airflow's REST API as the
signed-in user) on the API server at ``/ragops``, a "RAG control plane" entry in the navigation,
and a link on each DAG's page to that DAG's runs in the control plane. Every route needs the auth
manager's view access, every action DAG-run access on its DAG; see the app's module docstring.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from ragops.control_plane.app import create_app
from ragops.vocabulary import CONTROL_PLANE_PREFIX

NAV_ENTRY = "RAG control plane"


class RagopsControlPlanePlugin(AirflowPlugin):
    name = "ragops_control_plane"
    fastapi_apps = [{"app": create_app(), "url_prefix": CONTROL_PLANE_PREFIX, "name": "ragops control plane"}]
    external_views = [
        {"name": NAV_ENTRY, "href": f"{CONTROL_PLANE_PREFIX}/", "destination": "nav", "category": "browse",
         "url_route": "ragops-control-plane"},
        # Airflow fills {DAG_ID} in: the DAG's recorded runs, their summaries, fallbacks and alerts.
        {"name": NAV_ENTRY, "href": f"{CONTROL_PLANE_PREFIX}/runs?dag_id={{DAG_ID}}", "destination": "dag",
         "url_route": "ragops-control-plane-dag"},
    ]
