"""The exceptions l7analytics raises, one tree so callers can catch by meaning.

::

    L7AnalyticsError
    ├── ConfigError          bad configuration or arguments: fail fast, never retry
    ├── InputError           input that cannot be read at all (missing file, unreadable stream)
    ├── LakeError            the Parquet lake is missing, inconsistent or cannot be written
    ├── ModelError           no usable trained model for a detector
    ├── SourceError          a log source failed (adapters map their library errors here)
    │   └── SourceTimeout    transient: worth a retry
    ├── SinkError            an alert sink failed to write
    └── KibanaError          Kibana is unreachable or refused the saved objects

Adapters translate library exceptions into these at the edge (``raise ... from exc``) so
the core, the CLI and the Airflow tasks never need to know which library failed. Messages are
one line, name the thing that is wrong and where, and never contain secrets.
"""

from __future__ import annotations


class L7AnalyticsError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(L7AnalyticsError):
    """Configuration or arguments are invalid; the message names the setting and the file."""


class InputError(L7AnalyticsError):
    """An input file or stream cannot be read at all (single bad records are quarantined)."""


class LakeError(L7AnalyticsError):
    """The lake cannot be read or written."""


class ModelError(L7AnalyticsError):
    """A detector needs a trained model and none fits the window."""


class SourceError(L7AnalyticsError):
    """A log source failed."""


class SourceTimeout(SourceError):
    """A transient source failure (timeout, overload); retrying may succeed."""


class SinkError(L7AnalyticsError):
    """An alert sink could not write every alert."""


class KibanaError(L7AnalyticsError):
    """Kibana could not be reached or did not import the saved objects (auth: ConfigError)."""
