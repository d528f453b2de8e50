"""Adapters: the edges where files, the lake and (later) Elasticsearch are touched."""
