"""The control plane: the lineage registry as pages inside the Airflow UI, and its actions.

``queries`` turns the registry (and the artifact store) into page data, ``svg`` draws charts and
the lineage graph server-side from escaped text, ``pages`` renders Jinja2 templates (autoescape on),
``actions`` triggers the DAGs through Airflow's REST API as the signed-in user, ``app`` wires them
into a FastAPI app, and ``auth`` asks Airflow's auth manager. Only ``auth`` (and what ``app``
builds from it) touches Airflow; the rest runs without it. plugins/ragops_control_plane.py
registers the app on the API server at ``CONTROL_PLANE_PREFIX``.
"""
