"""Synthetic PCNA movies with exact ground truth.

``params`` (what defines a movie) → ``cells`` and ``lifecycle`` (the cell-cycle
state machine) → ``geometry``, ``foci``, ``motion`` (shape, replication foci,
movement) → ``render`` (labels, signals, camera) → ``truth`` (answer tables) →
``writers`` (files); :mod:`~pcnacycle.simulation.simulator` runs the steps.
"""
