"""Elasticsearch adapters: the L7 source, the alert sinks and the one connection they share.

Only this package imports the ``elasticsearch`` client. Library exceptions are translated
into :mod:`l7analytics.core.errors` here, with one-line messages that name the host and the
problem and never a credential.
"""
