"""The network: torchvision's Mask R-CNN built from the config (``model``) with phase-aware RoI heads (``roi_heads``).

torchvision internals this package relies on
--------------------------------------------
pyproject pins ``torchvision>=0.29,<0.30``; each of these is exercised by a test,
so a torchvision that changes them fails the suite rather than a user's run:

* ``roi_heads.RoIHeads.forward`` / ``postprocess_detections`` (overridden by
  :class:`~pcnacycle.modeling.roi_heads.PhaseRoIHeads`, swapped in by class
  assignment): ``tests/test_predict.py::test_phase_roi_heads_give_class_probabilities_in_their_outputs``;
* ``transform.GeneralizedRCNNTransform.resize`` / ``postprocess`` / ``torch_choice``
  (overridden by :class:`~pcnacycle.modeling.model.ResizeTransform`):
  ``tests/test_predict.py::test_resize_transform_sizes_and_maps_boxes_back``;
* ``roi_heads.expand_boxes`` / ``expand_masks`` (used by
  :func:`~pcnacycle.engine.predictor.paste_in_box`):
  ``tests/test_predict.py::test_paste_in_box_equals_torchvisions_full_frame_paste``.
"""
