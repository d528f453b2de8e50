"""Detectors, one module each, all following :class:`~l7analytics.detectors.base.Detector`."""

from __future__ import annotations

from collections.abc import Iterable

from l7analytics.core.settings import Settings
from l7analytics.detectors.base import DetectionContext, Detector
from l7analytics.detectors.restricted_url import RestrictedUrlDetector
from l7analytics.detectors.unusual_pair import UnusualPairDetector
from l7analytics.detectors.url_scan import UrlScanDetector

#: Detector id -> class. The settings key of each is the id without the ``l7.`` prefix.
REGISTRY: dict[str, type[Detector]] = {
    RestrictedUrlDetector.id: RestrictedUrlDetector,
    UrlScanDetector.id: UrlScanDetector,
    UnusualPairDetector.id: UnusualPairDetector,
}


def build_detectors(settings: Settings) -> list[Detector]:
    """The enabled detectors, each built from its own section of the settings.

    Building reads no file: external rule lists were read into the settings when they loaded
    (:func:`l7analytics.adapters.settings_file.load_job_settings`), so the same settings give
    the same detectors on every machine."""
    detectors: list[Detector] = []
    for detector_id, cls in REGISTRY.items():
        config = getattr(settings.detectors, detector_id.removeprefix("l7."))
        if config.enabled:
            detectors.append(cls(config))
    return detectors


def rule_lists(detectors: Iterable[Detector]) -> dict[str, list[dict[str, str]]]:
    """Detector id -> name and sha256 of the external lists it was built with (only detectors
    that use one), for run metadata beside the detectors' versions."""
    found = {d.id: list(getattr(d, "rule_lists", ())) for d in detectors}
    return {detector_id: refs for detector_id, refs in found.items() if refs}


__all__ = [
    "REGISTRY",
    "DetectionContext",
    "Detector",
    "RestrictedUrlDetector",
    "UnusualPairDetector",
    "UrlScanDetector",
    "build_detectors",
    "rule_lists",
]
