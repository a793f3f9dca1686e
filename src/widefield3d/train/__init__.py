"""The shared adversarial training loop (Deep-Z, MFPINet, WFCON-Net): losses, checkpoints, log, resume checks,
``train()``. Import from the submodules: ``widefield3d.train.trainer``, ``widefield3d.train.losses``."""
