"""Domain randomisation: each movie drawn from ranges that span real microscopes and cell lines.

A model trained on one simulated look (nuclei 22 px across, one texture, one
camera) fails on a real movie. :class:`RandomisationRanges` lists what differs
between microscopes and cell lines, each as a ``(low, high)`` range;
:func:`draw_params` draws one movie's :class:`SimulationParams` from them.
Texture follows the nucleus (``scale_texture``): foci and nucleoplasm grain
grow with the drawn nucleus size and the number of foci per nucleus stays put,
as under a different objective, on top of their own drawn variation.

Ranges (all uniform unless marked *log*: uniform in the logarithm)
-------------------------------------------------------------------
nucleus_diameter : px, *log*
    Equivalent diameter of a full-size G1 nucleus (``nucleus_radius`` × 2).
aspect : minor/major axis ratio
    Lower end of each movie's per-cell aspect range; the upper end is 0.3 more (≤ 0.98).
irregularity
    sd of the shape harmonics (0: ellipses; 0.08: lobed).
texture, texture_grain
    Nucleoplasm granularity: relative sd, and smoothing sd in px of an 11-px-radius nucleus.
nucleoli_most, nucleolus_depth
    Most nucleoli per nucleus (fewest is 1, or 0 when the most is 0) and their dimming.
foci_density, foci_size, foci_ratio
    S-phase foci: number and size relative to the default stages (early many small,
    mid rim, late few large), peak brightness relative to G1.
s_ratio, g2_ratio
    Nucleoplasm brightness in S and in G2, relative to G1.
m_ratio, m_cytoplasm, mitotic_spread
    Mitosis: dimming relative to G2, share of PCNA spread over the cell body, rounding
    (radius of the round cell / G2 nucleus).
g1_photons : *log*
    Signal level (photons per pixel of a G1 nucleus): sets the shot-noise SNR.
background_photons : *log*
    Background and autofluorescence level outside cells.
cytoplasm_ratio
    Cytoplasmic autofluorescence / G1 brightness.
defocus : px of an 11-px-radius nucleus
    sd of the Gaussian blur, scaled with the nucleus like the texture: optics magnify the blur
    with the nuclei (``benchmarks/texture_stats.py``: edges of large simulated nuclei were
    sharper than any real one's when the blur stayed in px).
read_noise : ADU
bit_depths
    Camera bit depths to pick from; the gain is set so a bright G2 nucleus fills about
    half of the range (8-bit cameras then quantise coarsely).
contact
    Fraction of touching at which nuclei are pushed apart (< 1: they overlap).
coverage
    Fraction of the field covered by nuclei; caps the number of cells (the movie's
    ``cells`` is the most).
debris : specks per 100 000 px
cell_brightness_sd : sd / mean, *log*
    How far PCNA expression differs between cells (log-normal): a stable line
    under one promoter varies little, a transient transfection or a mixed population a lot,
    and a dim nucleus is still a nucleus. The upper end (2.5: a log sd of 1.4 between cells)
    reaches the spread measured in real PCNA fields, where nuclei differ up to a hundredfold
    within one frame (``benchmarks/texture_stats.py``, "spread"); drawn in the logarithm, half
    the movies stay below 0.5, as stable lines, DSB2018 and GOWT1 do. Drawn after the others,
    so that movies drawn before it existed keep their other values.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..errors import PcnacycleError
from .params import SimulationParams

#: Hard limits the ranges must lie within (beyond them the simulator or realism breaks).
_LIMITS = {
    "nucleus_diameter": (6.0, 200.0), "aspect": (0.3, 0.98), "irregularity": (0.0, 0.15),
    "texture": (0.0, 0.5), "texture_grain": (0.2, 5.0), "nucleoli_most": (0, 10), "nucleolus_depth": (0.0, 1.0),
    "foci_density": (0.1, 5.0), "foci_size": (0.2, 4.0), "foci_ratio": (0.1, 5.0), "s_ratio": (0.3, 2.0),
    "g2_ratio": (1.0, 3.0), "m_ratio": (0.05, 1.0), "m_cytoplasm": (0.0, 1.0), "mitotic_spread": (1.0, 2.0),
    "g1_photons": (10.0, 1e5), "background_photons": (0.0, 1e4), "cytoplasm_ratio": (0.0, 1.0),
    "defocus": (0.0, 6.0), "read_noise": (0.0, 50.0), "contact": (0.6, 1.2), "coverage": (0.01, 0.5),
    "debris": (0.0, 50.0), "cell_brightness_sd": (0.0, 3.0),
}
_LOG = ("nucleus_diameter", "g1_photons", "background_photons", "cell_brightness_sd")
#: Ranges added later, drawn after all others so that earlier draws keep their values.
_DRAWN_LAST = ("cell_brightness_sd",)


@dataclass(frozen=True)
class RandomisationRanges:
    """``(low, high)`` for each randomised property of a movie; see the module docstring."""

    nucleus_diameter: tuple[float, float] = (15.0, 100.0)
    aspect: tuple[float, float] = (0.5, 0.9)
    irregularity: tuple[float, float] = (0.0, 0.08)
    texture: tuple[float, float] = (0.03, 0.3)
    texture_grain: tuple[float, float] = (0.6, 2.0)
    nucleoli_most: tuple[int, int] = (0, 5)
    nucleolus_depth: tuple[float, float] = (0.1, 0.7)
    foci_density: tuple[float, float] = (0.5, 3.0)
    foci_size: tuple[float, float] = (0.6, 1.6)
    foci_ratio: tuple[float, float] = (0.6, 2.5)
    s_ratio: tuple[float, float] = (0.7, 1.1)
    g2_ratio: tuple[float, float] = (1.1, 2.2)
    m_ratio: tuple[float, float] = (0.25, 0.8)
    m_cytoplasm: tuple[float, float] = (0.0, 0.6)
    mitotic_spread: tuple[float, float] = (1.0, 1.5)
    g1_photons: tuple[float, float] = (60.0, 3000.0)
    background_photons: tuple[float, float] = (2.0, 200.0)
    cytoplasm_ratio: tuple[float, float] = (0.0, 0.2)
    defocus: tuple[float, float] = (0.3, 2.0)
    read_noise: tuple[float, float] = (1.0, 10.0)
    bit_depths: tuple[int, ...] = (8, 12, 16)
    contact: tuple[float, float] = (0.8, 1.0)
    coverage: tuple[float, float] = (0.1, 0.4)
    debris: tuple[float, float] = (0.0, 5.0)
    cell_brightness_sd: tuple[float, float] = (0.1, 2.5)

    def __post_init__(self):
        for name, (lowest, highest) in _LIMITS.items():
            value = getattr(self, name)
            if not (isinstance(value, (tuple, list)) and len(value) == 2
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
                    and lowest <= value[0] <= value[1] <= highest):
                raise PcnacycleError(f"randomisation range {name}={value!r}: must be (low, high) with "
                                     f"{lowest:g} ≤ low ≤ high ≤ {highest:g}")
        if not self.bit_depths or set(self.bit_depths) - {8, 10, 12, 14, 16}:
            raise PcnacycleError(f"randomisation bit_depths={self.bit_depths!r}: give some of 8, 10, 12, 14, 16")


def _uniform(rng: np.random.Generator, name: str, bounds: tuple[float, float]) -> float:
    low, high = bounds
    if name in _LOG and low > 0:
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
    else:
        value = rng.uniform(low, high)
    # a range fixed by the user is that value exactly (not its logarithm's round trip); the draw is still
    # made, so that the values drawn after it stay those of any other range
    return float(low) if low == high else float(value)


def draw_values(ranges: RandomisationRanges, rng: np.random.Generator) -> dict:
    """One draw of every range: ``{name: value}`` (floats; ``nucleoli_most`` and ``bit_depth`` ints)."""
    drawn = {name: _uniform(rng, name, getattr(ranges, name)) for name in _LIMITS if name not in _DRAWN_LAST}
    low, high = ranges.nucleoli_most
    drawn["nucleoli_most"] = int(rng.integers(low, high + 1))
    drawn["bit_depth"] = int(rng.choice(ranges.bit_depths))
    drawn.update((name, _uniform(rng, name, getattr(ranges, name))) for name in _DRAWN_LAST)
    return drawn


def _cells_that_fit(params: SimulationParams, coverage: float) -> int:
    """The movie's cells, or fewer so that nuclei cover at most ``coverage`` of the field."""
    height, width = params.size
    return max(1, min(params.cells, int(coverage * height * width / params.mean_nuclear_area())))


def _fit_to_field(ranges: RandomisationRanges, base: SimulationParams) -> RandomisationRanges:
    """The ranges with nucleus sizes capped so that one nucleus covers at most 40% of the field."""
    height, width = base.size
    fit = 2 * math.sqrt(0.4 * height * width / (math.pi * (1 + base.growth / 2)))
    low, high = ranges.nucleus_diameter
    if fit < low:
        raise PcnacycleError(f"size={base.size!r}: too small for randomised nuclei of {low:g} px or more")
    return replace(ranges, nucleus_diameter=(low, min(high, fit)))


def draw_params(base: SimulationParams, ranges: RandomisationRanges | None = None) -> tuple[SimulationParams, dict]:
    """A movie's parameters drawn from ``ranges`` on top of ``base``; its seed seeds the draw.

    Everything not randomised (frames, size, durations, motion, DIC) comes from
    ``base``. The draw uses its own random stream, so the movie's own draws are
    those of a plain movie with the same seed.

    Nucleus sizes are capped so that one nucleus covers at most 40% of the
    field (:func:`ranges_used` gives the ranges after that cap).

    Returns
    -------
    SimulationParams
        Validated parameters of the movie.
    dict
        The drawn values, by range name (what ``simulation.json`` records).
    """
    ranges = _fit_to_field(ranges or RandomisationRanges(), base)
    # a stream of its own, fixed by the seed (the movie itself uses spawn keys 0-4)
    rng = np.random.default_rng(np.random.SeedSequence(base.seed, spawn_key=(100,)))
    drawn = draw_values(ranges, rng)
    aspect_low = drawn["aspect"]
    most = drawn["nucleoli_most"]
    bits = drawn["bit_depth"]
    params = replace(
        base, nucleus_radius=drawn["nucleus_diameter"] / 2, aspect_range=(aspect_low, min(aspect_low + 0.3, 0.98)),
        nucleoli_count=(min(1, most), most), scale_texture=True, camera_offset=round(0.04 * 2**bits),
        **{name: drawn[name] for name in (
            "irregularity", "texture", "texture_grain", "nucleolus_depth", "foci_density", "foci_size",
            "foci_ratio", "s_ratio", "g2_ratio", "m_ratio", "m_cytoplasm", "mitotic_spread", "g1_photons",
            "background_photons", "cytoplasm_ratio", "read_noise", "contact", "debris", "cell_brightness_sd")},
        bit_depth=bits,
    )
    params = replace(params, defocus=drawn["defocus"] * params.texture_scale())
    # gain: the brightest G2 nucleus (with foci) fills about half the camera's range
    brightest = max(params.g2_ratio, params.s_ratio + params.foci_ratio)
    peak = params.g1_photons * brightest * 1.5 + params.background_photons
    params = replace(params, gain=min(1.0, 0.5 * (2**bits - 1 - params.camera_offset) / peak),
                     cells=_cells_that_fit(params, drawn["coverage"]))
    params.validate()
    return params, drawn


def ranges_used(ranges: RandomisationRanges, base: SimulationParams) -> dict:
    """The ranges a draw for ``base`` uses (nucleus size capped by the field), as JSON-ready lists."""
    return {name: list(value) for name, value in asdict(_fit_to_field(ranges, base)).items()}

