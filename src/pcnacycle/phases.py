"""The one phase vocabulary: cell-cycle phases, the classes a model calls, their colours and durations.

A cell passes G1 → S → G2 → M. In PCNA images G1 and G2 look alike (uniform
nucleoplasm), so a detector calls three classes, ``G1/G2``, ``S`` and ``M``,
and the resolver (:mod:`pcnacycle.tracking.resolve`) tells G1 from G2 by
where a track is in its cycle.
"""

#: The four phases, in cycle order.
PHASES = ("G1", "S", "G2", "M")
#: The detector's classes: G1 and G2 look alike in PCNA (uniform), so they are one class.
CLASSES = ("G1/G2", "S", "M")
#: The class each phase is called as.
PHASE_CLASS = {"G1": "G1/G2", "S": "S", "G2": "G1/G2", "M": "M"}

#: Colours of the phase classes in every figure (RGB, 0-255).
PHASE_COLOURS = {
    "G1/G2": (80, 200, 255),
    "G1": (80, 200, 255),
    "G2": (40, 120, 255),
    "S": (255, 200, 40),
    "M": (255, 60, 160),
    "nucleus": (120, 255, 120),
}
#: The colour of a class not listed above (a model trained with other class names).
UNKNOWN_PHASE_COLOUR = (200, 200, 200)

#: The textbook 23-hour human cell cycle (Alberts, Molecular Biology of the Cell): G1 11 h, S 8 h, G2 4 h,
#: M 1 h. Only a starting point: with ``estimate_durations`` the resolver re-estimates them from the movie.
DEFAULT_PHASE_MINUTES = {"G1": 660.0, "S": 480.0, "G2": 240.0, "M": 60.0}
