"""A case from a labelled MR–TRUS pair: the gland channels, the landmarks, the reference and ``case.json``.

Shared by the layouts whose labels carry the gland in channel 0 and landmarks in the others (µ-RegPro, DeepReg,
paired folders). The reference is derived from the labels (:mod:`regkit.importers.reference`) unless the user asks
for the identity by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from regkit.errors import InputError
from regkit.importers.labels import LANDMARK_NOTE, corresponding_landmarks

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

    from regkit.case import Case
    from regkit.importers.reference import ReferenceThresholds

ReferenceChoice = Literal["labels", "identity"]
REFERENCE_CHOICES = ("labels", "identity")

LABELS_CONVENTION = (
    "reference derived from the labels (MR physical -> TRUS physical, LPS mm): a rigid fit of the landmark "
    "centroids refined by ICP of the gland surfaces, or the gland surfaces alone; its quality is in 'reference'"
)
IDENTITY_CONVENTION = (
    "identity, asked for by name: MR physical = TRUS physical (the pair is taken as pre-aligned); 'reference' "
    "measures how well the labels agree under it"
)


def check_reference_choice(reference: str) -> None:
    if reference not in REFERENCE_CHOICES:
        raise InputError(f"unknown reference {reference!r}", fix="use 'labels' (derived from the labels) or "
                         "'identity' (only for pairs known to be aligned in physical space)")


def check_label_grid(label: sitk.Image, image: sitk.Image, what: str, path: Path | None) -> None:
    """A label must share its image's grid (after its channel axis is dropped)."""
    from regkit.image import ImageGeometry

    diff = ImageGeometry.of(image).matches(ImageGeometry.of(label))
    if diff:
        raise InputError(f"the {what}'s grid differs from its image's ({diff})", path,
                         "give the label on its image's grid (same size, spacing, origin and direction), or "
                         "resample it (nearest neighbour)")


def gland(channels: list[sitk.Image], what: str, path: Path | None) -> sitk.Image:
    """Channel 0 of a label (the gland); an error naming the file when it is missing or empty."""
    import SimpleITK as sitk

    if not channels:
        raise InputError(f"the {what} has no channel", path, "give the gland in channel 0")
    count = int((sitk.GetArrayViewFromImage(channels[0]) > 0).sum())
    if count < 8:
        raise InputError(f"the gland channel (0) of the {what} is {'empty' if not count else f'{count} voxels'}",
                         path, "give the prostate gland in channel 0 of the label (landmarks in channels 1, 2, ...)")
    return channels[0]


def labelled_case(case_id: str, mr: sitk.Image, us: sitk.Image, mr_channels: list[sitk.Image],
                  us_channels: list[sitk.Image] | None, files: dict[str, Path], metadata: dict,
                  reference: ReferenceChoice = "labels", thresholds: ReferenceThresholds | None = None) -> Case:
    """The case of a labelled pair: MR fixed, TRUS moving, glands from channel 0, landmarks from the channels
    non-empty in both labels, and the reference from the labels (or the identity, by name).

    ``files`` maps roles (``fixed``, ``moving``, ``fixed_label``, ``moving_label``) to the source files, for
    error messages; ``metadata`` is the importer's part of ``case.json``.
    """
    from regkit.case import Case
    from regkit.importers.reference import DEFAULT_THRESHOLDS, reference_from_labels
    from regkit.transform import RigidTransform

    thresholds = thresholds or DEFAULT_THRESHOLDS

    check_reference_choice(reference)
    mr_gland = gland(mr_channels, "MR label", files.get("fixed_label"))
    check_label_grid(mr_gland, mr, "MR label", files.get("fixed_label"))
    us_gland, landmarks, meta = None, None, dict(metadata)
    meta["label_channels"] = {"mr": len(mr_channels), "trus": len(us_channels) if us_channels else 0}
    if us_channels:
        us_gland = gland(us_channels, "TRUS label", files.get("moving_label"))
        check_label_grid(us_gland, us, "TRUS label", files.get("moving_label"))
        landmarks = corresponding_landmarks({f"channel{k}": c for k, c in enumerate(mr_channels[1:], 1)},
                                            {f"channel{k}": c for k, c in enumerate(us_channels[1:], 1)})
        if len(landmarks):
            meta["landmarks"] = landmarks.to_json(channels=[int(n.removeprefix("channel")) for n in landmarks.names],
                                                  note=LANDMARK_NOTE)
        elif landmarks.skipped:
            meta["landmarks_skipped"] = landmarks.skipped
    elif reference == "labels":
        raise InputError("the case has no TRUS label, so no reference can be derived from the labels",
                         files.get("moving"), "give the TRUS gland label, or pass reference='identity' (--reference "
                         "identity) if the pair is known to be aligned in physical space")
    transform = RigidTransform.identity()
    if us_gland is not None:
        lm = landmarks if landmarks is not None and len(landmarks) else None
        channels = max(len(mr_channels), len(us_channels)) - 1
        ref = reference_from_labels(mr_gland, us_gland, lm, method="auto" if reference == "labels" else "identity",
                                    landmark_channels=channels, thresholds=thresholds)
        meta["reference"] = ref.to_json()
        from regkit.sre import sre
        from regkit.surface import surface_from_label

        surface = surface_from_label(mr_gland)
        meta["reference"]["identity_sre_mm"] = round(float(sre(RigidTransform.identity(), ref.transform, surface)), 4)
        if reference == "labels":
            transform = ref.transform
        else:  # offer the label-derived reference beside the identity asked for
            fitted = reference_from_labels(mr_gland, us_gland, lm, landmark_channels=channels, thresholds=thresholds,
                                           search=False)
            gap = float(sre(transform, fitted.transform, surface))
            meta["label_reference"] = {**fitted.to_json(), "sre_from_identity_mm": round(gap, 4)}
            if not fitted.flagged and gap > 1.0:
                meta["note"] = (f"the labels fit cleanly and place the TRUS {gap:.1f} mm (SRE) from the identity asked "
                                "for: import with reference='labels' (--reference labels) to use them")
    meta["ground_truth_convention"] = LABELS_CONVENTION if reference == "labels" else IDENTITY_CONVENTION
    return Case(case_id=case_id, fixed=mr, moving=us, fixed_label=mr_gland, ground_truth=transform,
                moving_label=us_gland, metadata=meta, files=dict(files))
