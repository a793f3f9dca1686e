"""Command-line verbs, one module per method.

Every module here defines ``register(app, train_app)`` and is discovered by ``widefield3d.cli``; it adds its
commands to the main typer ``app`` (e.g. ``refocus``) and its training command to ``train_app`` (e.g.
``train deepz``). Keep modules thin and import torch and the method inside the command functions, so that
``widefield3d --help`` stays fast.
"""
