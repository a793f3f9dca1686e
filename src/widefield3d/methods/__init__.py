"""The methods of the papers, each composing the layers below: config, dataset building, ``train()``,
``load()``, ``predict()``. A newcomer starts reading here. Import from the submodules."""
