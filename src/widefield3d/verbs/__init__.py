"""Command-line verbs, one module per command or method.

Every public module here defines its command functions at module level and ``register(app, train_app)``, which
adds them to the main typer ``app`` (e.g. ``refocus``, or a group such as ``simulate``) and its training command
to ``train_app`` (e.g. ``train deepz``); ``widefield3d.cli.VERBS`` lists the modules. Modules named ``_*`` hold
what the verbs share (``_common``: console, parsing, companion files, error naming; ``_options``,
``_training_options``: typer options). Keep modules thin and import torch and the method inside the command
functions, so that ``widefield3d --help`` stays fast.
"""
