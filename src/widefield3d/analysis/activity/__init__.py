"""The analysis steps of 3D neuron activity from a two-channel wide-field video (Deep-Z Fig. 3; paper Methods
"Tracking and quantification of C. elegans neuron activity").

One step per module: :mod:`~.segment` (median projection, local-maximum centroids, watershed masks),
:mod:`~.traces` (F from the brightest voxels, dF, active neurons), :mod:`~.clusters` (similarity, eigen-gap,
spectral clustering) and :mod:`~.scores` (against simulated truth). The frame registration is
:mod:`widefield3d.prep.frame_registration`; the whole chain with Deep-Z refocusing is
:mod:`widefield3d.methods.activity` (:func:`~widefield3d.methods.activity.analyse_activity`).
"""
