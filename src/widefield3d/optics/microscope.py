"""The microscope description shared by the PSF models, the simulator and the methods.

All lengths are micrometres. The axial coordinate ``z`` is the depth of the focal plane in the sample
(sample space, growing away from the objective); ``depth_um`` is how far below the coverslip the imaged
region lies, which sets the depth-dependent aberration of an index-mismatched objective.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from widefield3d.errors import InputError

Modality = Literal["widefield", "confocal", "brightfield"]


class Microscope(BaseModel):
    """Objective, sample, detection and sampling of a microscope (all lengths in µm)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    na: float = Field(0.75, gt=0, lt=1.7, description="numerical aperture of the objective")
    magnification: float = Field(20.0, gt=0, description="total magnification onto the camera")
    immersion_index: float = Field(1.0, ge=1.0, le=2.0, description="refractive index of the immersion medium")
    sample_index: float = Field(1.33, ge=1.0, le=2.0, description="refractive index of the sample")
    coverslip_index: float = Field(1.515, ge=1.0, le=2.0)
    coverslip_thickness_um: float = Field(170.0, ge=0)
    working_distance_um: float = Field(1000.0, gt=0, description="design immersion thickness (Gibson-Lanni ti0)")
    depth_um: float = Field(0.0, ge=0, description="depth of the imaged region below the coverslip")
    emission_wavelength_um: float = Field(0.52, gt=0.2, lt=2.0)
    excitation_wavelength_um: float = Field(0.488, gt=0.2, lt=2.0)
    camera_pixel_um: float = Field(6.5, gt=0, description="physical camera pixel pitch")
    z_step_um: float = Field(0.5, gt=0, description="axial step of a z-stack, in sample space")
    modality: Modality = "widefield"
    pinhole_au: float = Field(1.0, gt=0, description="confocal pinhole diameter in Airy units")

    @model_validator(mode="after")
    def _check_na(self) -> Microscope:
        if self.na >= self.immersion_index:
            raise ValueError(f"NA {self.na} must be below the immersion index {self.immersion_index}")
        return self

    @property
    def pixel_um(self) -> float:
        """Camera pixel projected into the sample (µm)."""
        return self.camera_pixel_um / self.magnification

    @property
    def airy_unit_um(self) -> float:
        """Diameter of the Airy disc at the emission wavelength, in the sample (µm)."""
        return 1.22 * self.emission_wavelength_um / self.na

    @property
    def lateral_resolution_um(self) -> float:
        """Lateral FWHM of an ideal wide-field PSF, 0.51 λ/NA (µm)."""
        return 0.51 * self.emission_wavelength_um / self.na

    def with_(self, **changes) -> Microscope:
        """A copy with some fields changed, validated again."""
        try:
            return Microscope(**{**self.model_dump(), **changes})
        except ValueError as err:
            raise InputError(f"microscope: {_first_error(err)}") from err


def _first_error(err: ValueError) -> str:
    errors = getattr(err, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first['msg']}" if where else first["msg"]
    return str(err)


PRESETS: dict[str, Microscope] = {
    # Deep-Z (Wu et al.): 20x/0.75 air, sCMOS 6.5 µm pixels -> 0.325 µm, 0.5 µm steps, C. elegans in
    # aqueous medium imaged ~20 µm deep; the air/water mismatch gives the axial asymmetry Deep-Z learns from.
    "deepz-20x075": Microscope(
        na=0.75, magnification=20, immersion_index=1.0, sample_index=1.33, working_distance_um=1000,
        depth_um=20.0, emission_wavelength_um=0.52, excitation_wavelength_um=0.488,
        camera_pixel_um=6.5, z_step_um=0.5, modality="widefield",
    ),
    # Deep-Z+ (Wu et al.): 63x/1.4 oil, mounted fixed sample (n ~ 1.45), paired with a confocal of the same objective.
    "deepzplus-63x14": Microscope(
        na=1.4, magnification=63, immersion_index=1.515, sample_index=1.45, working_distance_um=150,
        depth_um=5.0, emission_wavelength_um=0.52, excitation_wavelength_um=0.488,
        camera_pixel_um=6.5, z_step_um=0.2, modality="widefield", pinhole_au=1.0,
    ),
    # MFPINet (Ma et al.): 20x/0.75 bright-field cytology at 0.243 µm/px, 11 planes 2.7 µm apart.
    "mfpi-cytology-20x075": Microscope(
        na=0.75, magnification=20, immersion_index=1.0, sample_index=1.52, working_distance_um=1000,
        depth_um=15.0, emission_wavelength_um=0.55, excitation_wavelength_um=0.55,
        camera_pixel_um=4.86, z_step_um=2.7, modality="brightfield",
    ),
    # WFCON-Net: 60x/1.4 oil at 0.1083 µm/px and 0.5 µm steps, thick (~40 µm) scattering tissue.
    "wfcon-60x14": Microscope(
        na=1.4, magnification=60, immersion_index=1.515, sample_index=1.45, working_distance_um=150,
        depth_um=10.0, emission_wavelength_um=0.52, excitation_wavelength_um=0.488,
        camera_pixel_um=6.5, z_step_um=0.5, modality="widefield", pinhole_au=1.0,
    ),
}


def preset(name: str) -> Microscope:
    """The microscope of a named set-up (see ``PRESETS``)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise InputError(f"unknown microscope preset {name!r}; choose one of: {', '.join(PRESETS)}") from None
