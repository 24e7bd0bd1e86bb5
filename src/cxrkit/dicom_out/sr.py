"""The model's findings on one film as a DICOM Comprehensive SR (TID 1500 measurement report).

One measurement group per reported class (the finding coded by `cxrkit.dicom_out.codes`, its
probability, the model's threshold and the decision as Present / Absent), one group for the
screening results (polarity, view, not-a-chest-film, out of distribution), each referencing
the source film's SOP Instance; the model's name and version are the groups' Algorithm
Identification (TID 4019). The document lives in the source's study, in a new series.
"""

from __future__ import annotations

import math
from typing import Any

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

from cxrkit.card import ModelCard
from cxrkit.dicom_out import codes
from cxrkit.dicom_out.uids import new_uid
from cxrkit.errors import CxrkitError

MANUFACTURER = "cxrkit"
SR_SERIES_NUMBER = 9901
SR_SERIES_DESCRIPTION = "cxrkit findings (research use, not for diagnosis)"


def reported_classes(card: ModelCard | dict[str, Any], row: dict[str, Any]) -> list[dict[str, Any]]:
    """Per reported class: name, probability, threshold (or None) and the decision (bool).

    Binary models report their positive class (the second class name) against the card's
    threshold; multilabel models every class against its own threshold; multiclass models
    every class, the decided one being the argmax (no threshold).
    """
    decision = ModelCard.from_dict(card).require_decision()
    probs = row["probabilities"]
    for c in decision.class_names:
        if not math.isfinite(float(probs[c])):
            raise CxrkitError(f"probability of {c!r} is not a finite number; no report written")
    found = decision.report(np.array([float(probs[c]) for c in decision.class_names]))
    if "label" in row:  # the row's label is the decision `cxr predict` printed: report it
        decided = set(str(row["label"]).split("|")) - {""}
        found = [{**f, "present": f["name"] in decided} for f in found]
    return found


def build_sr(
    source: Dataset,
    row: dict[str, Any],
    card: ModelCard | dict[str, Any],
    *,
    model_name: str,
    model_version: str,
    uid_root: str | None = None,
    series_uid: str | None = None,
) -> hd.sr.ComprehensiveSR:
    """A Comprehensive SR of `row` (a `cxr predict` row) about the film `source`.

    `source` is the film's dataset (pixel data not needed). `series_uid` puts several
    reports in one series; by default each gets a new one under `uid_root`.
    """
    if "error" in row:
        raise CxrkitError(f"{row.get('path', 'film')}: {row['error']}; no report written")
    card = ModelCard.from_dict(card)
    algorithm = hd.sr.AlgorithmIdentification(name=model_name, version=model_version)
    source_image = hd.sr.SourceImageForMeasurementGroup.from_source_image(source)
    groups = [
        _finding_group(f, algorithm, source_image, uid_root) for f in reported_classes(card, row)
    ]
    screening = _screening_group(row, algorithm, source_image, uid_root)
    if screening is not None:
        groups.append(screening)
    observer = hd.sr.ObserverContext(
        observer_type=Code("121007", "DCM", "Device"),
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=new_uid(uid_root),
            name=model_name[:64],
            manufacturer_name=MANUFACTURER,
            model_name=model_version[:64],
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.CHEST_XRAY,
        imaging_measurements=groups,
    )
    sr = hd.sr.ComprehensiveSR(
        evidence=[source],
        content=report,
        series_instance_uid=series_uid or new_uid(uid_root),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=new_uid(uid_root),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description=SR_SERIES_DESCRIPTION,
    )
    sr.StudyID = source.get("StudyID", "")
    scheme = Dataset()  # declare the private scheme (SOP Common module, PS3.3 C.12.1)
    scheme.CodingSchemeDesignator = codes.PRIVATE_SCHEME
    scheme.CodingSchemeName = "cxrkit private codes"
    scheme.CodingSchemeResponsibleOrganization = "cxrkit project"
    sr.CodingSchemeIdentificationSequence = [scheme]
    return sr


def _finding_group(
    finding: dict[str, Any],
    algorithm: hd.sr.AlgorithmIdentification,
    source_image: hd.sr.SourceImageForMeasurementGroup,
    uid_root: str | None,
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    code = codes.finding_code(finding["name"])
    measurements = [
        hd.sr.Measurement(name=codes.PROBABILITY, value=finding["probability"], unit=codes.NO_UNITS)
    ]
    if finding["threshold"] is not None:
        measurements.append(
            hd.sr.Measurement(
                name=codes.THRESHOLD, value=float(finding["threshold"]), unit=codes.NO_UNITS
            )
        )
    decision = codes.PRESENT if finding["present"] else codes.ABSENT
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=new_uid(uid_root), identifier=f"cxrkit {finding['name']}"[:64]
        ),
        finding_type=code,
        algorithm_id=algorithm,
        measurements=measurements,
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(name=code, value=decision)],
        source_images=[source_image],
    )


def _screening_group(
    row: dict[str, Any],
    algorithm: hd.sr.AlgorithmIdentification,
    source_image: hd.sr.SourceImageForMeasurementGroup,
    uid_root: str | None,
) -> hd.sr.MeasurementsAndQualitativeEvaluations | None:
    evaluations = []
    if row.get("polarity"):
        evaluations.append((codes.POLARITY, codes.polarity_code(str(row["polarity"]))))
    if row.get("view"):
        evaluations.append((codes.IMAGE_VIEW, codes.view_code(str(row["view"]))))
    if row.get("not_cxr") is not None:
        evaluations.append((codes.NOT_CXR, codes.YES if row["not_cxr"] else codes.NO))
    if row.get("out_of_distribution") is not None:
        ood = codes.YES if row["out_of_distribution"] else codes.NO
        evaluations.append((codes.OUT_OF_DISTRIBUTION, ood))
    measurements = []
    score = row.get("ood_score")
    if score is not None and math.isfinite(float(score)):
        measurements.append(
            hd.sr.Measurement(name=codes.OOD_SCORE, value=float(score), unit=codes.NO_UNITS)
        )
    if not evaluations and not measurements:
        return None
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=new_uid(uid_root), identifier="cxrkit screening"
        ),
        finding_type=codes.IMAGE_QUALITY,
        algorithm_id=algorithm,
        measurements=measurements or None,
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(name=n, value=v) for n, v in evaluations
        ],
        source_images=[source_image],
    )
