"""The Kubernetes runtime: one pod per instance bound to its machine, a NodePort Service per exposed task."""
