"""``python -m widefield3d ...``: the command line, also as ``torchrun --nproc-per-node N -m widefield3d train ...``."""

from widefield3d.cli import main

if __name__ == "__main__":
    main()
