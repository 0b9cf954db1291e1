"""The runtimes that run tasks' instances: ``local`` (processes) and ``kubernetes`` (pods).

``get_runtime()`` answers the one ``settings.DEPLOY_RUNTIME`` names, one object per process
(the local runtime keeps the processes it started, to reap them).
"""

from django.conf import settings

_runtimes = {}


def get_runtime():
    """The configured runtime (``settings.DEPLOY_RUNTIME``: ``local`` or ``kubernetes``)."""
    name = settings.DEPLOY_RUNTIME
    if name == "local":
        key = (name, str(settings.LOCAL_RUNTIME_DIR))
    elif name == "kubernetes":
        key = (name, settings.KUBERNETES_NAMESPACE)
    else:
        raise ValueError(f"unknown DEPLOY_RUNTIME {name!r}: expected 'local' or 'kubernetes'")
    if key not in _runtimes:
        # Only the configured runtime is imported: a local one never loads the Kubernetes client's config.
        if name == "local":
            from .local.runtime import LocalRuntime

            _runtimes[key] = LocalRuntime()
        else:
            from .kubernetes.runtime import KubernetesRuntime

            _runtimes[key] = KubernetesRuntime()
    return _runtimes[key]
