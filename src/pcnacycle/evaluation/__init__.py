"""Scoring: segmentation and phase calls against annotations, tracks and durations against truth.

``checks`` (inputs) → ``coco`` (box and mask AP), ``matching`` (IoU matching,
matching score), ``confusion`` (phase calls of matched nuclei) → ``writers``
(CSV, PNG); ``loop`` runs a model over records (also the trainer's hook) and
``evaluator`` puts it together for ``pcnacycle evaluate``. ``tracks`` scores a
``pcnacycle run`` folder against the simulator's truth.
"""
