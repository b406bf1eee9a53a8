"""Rendering a frame: labels and noise-free PCNA and DIC signals, then the camera."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .cells import _G1, _G2, _M, _S, _Cell
from .geometry import (
    _equivalent_radius,
    _gaussian_spots,
    _newborn,
    _Patch,
    _patch,
    _semi_axes,
    _shape_coordinates,
    _smoothstep,
    _to_offsets,
)
from .params import SimulationParams

#: Fraction of S over which replication foci emerge at its start, and fade out at its end.
FOCI_FADE = 0.08


def foci_contrast(progress):
    """Contrast of S-phase foci (0 to 1) at this fraction of S elapsed (scalar or array)."""
    progress = np.asarray(progress, np.float64)
    contrast = _smoothstep(progress / FOCI_FADE) * _smoothstep((1 - progress) / FOCI_FADE)
    return float(contrast) if contrast.ndim == 0 else contrast


def _nucleus_intensity(cell: _Cell, params: SimulationParams, patch: _Patch, score, along, across,
                       a: float, b: float, rng: np.random.Generator) -> np.ndarray:
    """Expected PCNA photons of one nucleus inside its patch: (h, w) float32 (0 outside)."""
    radius = _equivalent_radius(cell, params)
    inside = np.clip(1 - score, 0, 1)
    # soft one-pixel edge and a thicker (brighter) middle, as in a widefield image
    profile = np.clip((1 - score) * radius + 0.5, 0, 1) * (0.8 + 0.2 * np.sqrt(inside * (2 - inside)))
    g1 = params.g1_photons * cell.brightness
    if cell.phase == _M:
        progress = cell.phase_progress()
        # condensed chromosomes exclude PCNA: one plate, then two separating in anaphase
        split = 0.5 * a * float(_smoothstep((progress - 0.6) / 0.4))
        width = 0.12 * a
        plate = np.exp(-((np.abs(along) - split) ** 2) / (2 * width**2)) * np.exp(-2 * (across / (0.6 * b)) ** 2)
        dimming = float(_smoothstep(3 * progress))
        level = g1 * params.g2_ratio * (1 - (1 - params.m_ratio) * dimming)
        level *= 1 - params.m_cytoplasm * dimming  # what left for the cytoplasm (_mitotic_cytoplasm)
        return (level * profile * (1 - 0.5 * dimming * plate)).astype(np.float32)
    level = g1 * {_G1: 1.0 + 0.1 * cell.phase_progress(), _S: params.s_ratio, _G2: params.g2_ratio}[cell.phase]
    level *= _newborn(cell, params, params.daughter_brightness)
    grain = params.texture_grain * params.texture_scale()
    texture = ndi.gaussian_filter(rng.standard_normal(score.shape).astype(np.float32), grain)
    texture *= params.texture / max(float(texture.std()), 1e-6)
    nucleoli = cell.nucleoli
    dy, dx = _to_offsets(nucleoli[:, 0], nucleoli[:, 1], a, b, cell.angle)
    dark = _gaussian_spots(patch, dy, dx, np.full(len(nucleoli), params.nucleolus_depth), nucleoli[:, 2])
    image = level * profile * (1 + texture) * np.clip(1 - dark, 0, 1)
    if len(cell.foci):
        foci = cell.foci
        dy, dx = _to_offsets(foci[:, 0], foci[:, 1], a, b, cell.angle)
        ramp = foci_contrast(cell.phase_progress())
        spots = _gaussian_spots(patch, dy, dx, foci[:, 2] * params.foci_ratio * g1 * ramp, foci[:, 3])
        image += profile * spots
    return image.astype(np.float32)


def _mitotic_cytoplasm(cell: _Cell, params: SimulationParams) -> float:
    """Diffuse PCNA photons over a mitotic cell's body once its nuclear envelope is gone (0 otherwise)."""
    if cell.phase != _M or params.m_cytoplasm == 0:
        return 0.0
    dimming = float(_smoothstep(3 * cell.phase_progress()))
    level = params.g1_photons * cell.brightness * params.g2_ratio * (1 - (1 - params.m_ratio) * dimming)
    return params.m_cytoplasm * dimming * level


# DIC heights in px: a spread interphase cell is a low dome with the nucleus bulging
# on it; a mitotic cell rounds up into a tall ball barely larger than its chromatin.
_BODY_HEIGHT, _NUCLEUS_HEIGHT, _MITOTIC_HEIGHT = 6.0, 2.0, 10.0
_MITOTIC_BODY_SCALE = 1.08


def _body_shape(cell: _Cell, params: SimulationParams) -> tuple[float, np.ndarray]:
    """Cell body size relative to the nucleus, and its shape harmonics."""
    if cell.phase == _M:
        return _MITOTIC_BODY_SCALE, np.zeros(3, complex)
    return params.body_scale, cell.body_harmonics


def _body_height(cell: _Cell, params: SimulationParams, patch: _Patch, a: float, b: float, harmonics):
    """Cell height (px), bright rim and body's normalised radius in a patch: three (h, w) float32."""
    scale, body_harmonics = _body_shape(cell, params)
    body, _, _ = _shape_coordinates(patch, a * scale, b * scale, cell.angle, body_harmonics)
    if cell.phase == _M:
        # the steep edge of a rounded cell scatters light into a bright rim
        height = _MITOTIC_HEIGHT * np.sqrt(np.clip(1 - body**2, 0, 1))
        rim = np.exp(-(((body - 1) * a * scale / 1.5) ** 2))
        return height, rim, body
    nucleus, _, _ = _shape_coordinates(patch, a, b, cell.angle, harmonics)
    height = _BODY_HEIGHT * np.clip(1 - body**2, 0, 1) + _NUCLEUS_HEIGHT * np.sqrt(np.clip(1 - nucleus**2, 0, 1))
    return height, np.zeros_like(height), body


@dataclass
class _Frame:
    """Noise-free ingredients of one frame."""

    labels: np.ndarray  # (H, W) uint16
    pcna: np.ndarray  # (H, W) float32, photons before illumination and blur
    cytoplasm: np.ndarray  # (H, W) float32
    height: np.ndarray  # (H, W) float32, px
    rim: np.ndarray  # (H, W) float32


def _render(cells: list[_Cell], params: SimulationParams, offset: np.ndarray, rng) -> _Frame:
    """Labels and noise-free signals of one frame, cell by cell inside bounding boxes.

    Two passes: the first assigns each pixel to the nucleus whose normalised
    radius is smallest there (a z-buffer that splits any overlap along the
    line where both shapes are equally deep), the second paints each nucleus
    only on its own pixels.
    """
    shape = params.size
    labels = np.zeros(shape, np.uint16)
    depth = np.full(shape, np.inf, np.float32)
    geometry = []
    for cell in cells:
        a, b, harmonics = _semi_axes(cell, params)
        cy, cx = cell.y + offset[0], cell.x + offset[1]
        patch = _patch(cy, cx, a * (1 + np.abs(harmonics).sum()) + 2, shape)
        score, along, across = _shape_coordinates(patch, a, b, cell.angle, harmonics)
        nearer = (score < 1) & (score < depth[patch.rows, patch.cols])
        depth[patch.rows, patch.cols][nearer] = score[nearer]
        labels[patch.rows, patch.cols][nearer] = cell.track
        geometry.append((cy, cx, a, b, harmonics, patch, score, along, across))
    pcna = np.zeros(shape, np.float32)
    cytoplasm = np.zeros(shape, np.float32)
    height = np.zeros(shape, np.float32)
    rim = np.zeros(shape, np.float32)
    for cell, (cy, cx, a, b, harmonics, patch, score, along, across) in zip(cells, geometry):
        own = labels[patch.rows, patch.cols] == cell.track
        intensity = _nucleus_intensity(cell, params, patch, score, along, across, a, b, rng)
        pcna[patch.rows, patch.cols] += intensity * own
        scale, body_harmonics = _body_shape(cell, params)
        body_patch = _patch(cy, cx, a * scale * (1 + np.abs(body_harmonics).sum()) + 3, shape)
        cell_height, cell_rim, body = _body_height(cell, params, body_patch, a, b, harmonics)
        region = (body_patch.rows, body_patch.cols)
        np.maximum(height[region], cell_height, out=height[region])
        np.maximum(rim[region], cell_rim, out=rim[region])
        cytoplasm[region] += (params.cytoplasm_ratio * params.g1_photons * cell.brightness
                              * np.clip(1 - body, 0, 1) ** 0.5)
        diffuse = _mitotic_cytoplasm(cell, params)
        if diffuse:
            cytoplasm[region] += diffuse * np.clip(1 - body, 0, 1) ** 0.5
    return _Frame(labels, pcna, cytoplasm, height, rim)


def _illumination(shape: tuple[int, int], falloff: float, rng: np.random.Generator) -> np.ndarray:
    """Uneven illumination: radial falloff around an off-centre peak plus a tilt; (H, W) float32, max 1."""
    height, width = shape
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    cy, cx = rng.uniform(0.35, 0.65) * height, rng.uniform(0.35, 0.65) * width
    radius2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / (0.5 * height**2 + 0.5 * width**2)
    tilt = rng.normal(0, 0.05, 2)
    light = (1 - falloff * radius2) * (1 + tilt[0] * (yy / height - 0.5) + tilt[1] * (xx / width - 0.5))
    return (light / light.max()).astype(np.float32)


def _background_height(shape: tuple[int, int], pad: int, rng: np.random.Generator) -> np.ndarray:
    """Substrate texture for DIC, padded by ``pad`` for stage jitter: (H+2p, W+2p) float32."""
    padded = (shape[0] + 2 * pad, shape[1] + 2 * pad)
    fine = ndi.gaussian_filter(rng.standard_normal(padded).astype(np.float32), 2.0)
    coarse = ndi.gaussian_filter(rng.standard_normal(padded).astype(np.float32), 12.0)
    debris = ndi.gaussian_filter((rng.uniform(size=padded) < 2e-4).astype(np.float32), 1.5)
    return (0.15 * fine / fine.std() + 0.6 * coarse / coarse.std() + 40.0 * debris).astype(np.float32)


def _camera(photons: np.ndarray, params: SimulationParams, rng: np.random.Generator) -> np.ndarray:
    """Shot noise, gain, offset and read noise of expected photons: (H, W) uint16."""
    counts = rng.poisson(np.maximum(photons, 0)).astype(np.float32) * params.gain
    counts += params.camera_offset + rng.normal(0, params.read_noise, photons.shape).astype(np.float32)
    return np.clip(np.round(counts), 0, 2**params.bit_depth - 1).astype(np.uint16)


def _debris(shape: tuple[int, int], params: SimulationParams, rng: np.random.Generator) -> np.ndarray:
    """Bright specks stuck to the glass, unlabelled (none unless ``params.debris``): (H, W) float32 photons."""
    image = np.zeros(shape, np.float32)
    count = rng.poisson(params.debris * shape[0] * shape[1] / 1e5) if params.debris else 0
    if count:
        points = np.column_stack([rng.integers(0, shape[0], count), rng.integers(0, shape[1], count)])
        sd = rng.uniform(0.5, 2.0, count) * params.texture_scale()
        brightness = rng.uniform(0.5, 3.0, count) * params.g1_photons * 2 * np.pi * sd**2
        for (y, x), s, b in zip(points, sd, brightness):
            spot = np.zeros(shape, np.float32)
            spot[y, x] = b
            image += ndi.gaussian_filter(spot, s, truncate=3.0)
    return image


def _pcna_photons(frame: _Frame, params, illumination, frame_index: int, debris=0.0) -> np.ndarray:
    """Expected PCNA photons: defocus blur, illumination, bleaching, autofluorescence, debris."""
    signal = frame.pcna + frame.cytoplasm + debris
    if params.defocus > 0:
        signal = ndi.gaussian_filter(signal, params.defocus)
    bleach = (1 - params.bleach_per_frame) ** frame_index
    return illumination * (signal * bleach + params.background_photons)


def _dic_photons(frame: _Frame, params, illumination, background: np.ndarray) -> np.ndarray:
    """Expected DIC photons: relief shading along the shear direction (45°) plus the mitotic rim."""
    height = ndi.gaussian_filter(background + frame.height, 1.0 + params.defocus)
    slope_y, slope_x = np.gradient(height)
    relief = np.tanh((slope_y + slope_x) / np.sqrt(2))  # saturates at steep mitotic edges
    return params.dic_photons * illumination * (1 + params.dic_contrast * relief + params.dic_rim * frame.rim)
