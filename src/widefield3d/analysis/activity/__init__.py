"""3D neuron activity from a two-channel wide-field video (Deep-Z Fig. 3; paper Methods "Tracking and
quantification of C. elegans neuron activity").

One step per module: :mod:`~.register` (projective frame registration), :mod:`~.segment` (median projection,
local-maximum centroids, watershed masks), :mod:`~.traces` (F from the brightest voxels, dF, active neurons),
:mod:`~.clusters` (similarity, eigen-gap, spectral clustering), :mod:`~.scores` (against simulated truth) and
:mod:`~.pipeline` (refocus with Deep-Z and the whole chain: :func:`analyse_activity`, :func:`write_activity`).
"""

from widefield3d.analysis.activity.pipeline import ActivityConfig, ActivityResult, analyse_activity, write_activity

__all__ = ["ActivityConfig", "ActivityResult", "analyse_activity", "write_activity"]
