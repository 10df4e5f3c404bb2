"""``[core] hostname_callable`` of the e2e tier: each loopback "host" names itself.

The two Celery workers run on one machine here, so ``socket.getfqdn()`` would give both the same
name; the tier sets ``RAGOPS_E2E_HOSTNAME`` per process (in compose each container has its own
hostname and Airflow's default callable serves).
"""

from __future__ import annotations

import os
import socket


def from_env() -> str:
    return os.environ.get("RAGOPS_E2E_HOSTNAME") or socket.getfqdn()
