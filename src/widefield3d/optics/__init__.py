def __getattr__(name: str):  # ``widefield3d.optics.brightfield_stack``, loaded on first use (it imports torch)
    if name == "brightfield_stack":
        from widefield3d.optics.brightfield import brightfield_stack
        return brightfield_stack
    raise AttributeError(f"module 'widefield3d.optics' has no attribute {name!r}")
