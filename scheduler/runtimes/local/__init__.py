"""The local runtime: each instance a process on this machine (see ``runtime.LocalRuntime``)."""
