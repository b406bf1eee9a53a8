"""From files on disk to training samples.

``catalog`` maps each ``DATASETS.FORMAT`` to its reader module (``dsb2018``,
``labelmask``, ``deepcell``, ``via2``, ``coco``), which use ``channels``
(where an image's channels are), ``classes`` (class names to ids) and
``annotations`` (helpers of the JSON formats). ``dataset`` splits records and
feeds the trainer; ``movie`` reads the frames of a time-lapse movie.
"""
