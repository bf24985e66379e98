"""The HTTP query service over the materialized view (a RocksDB secondary of store/).

``create_app`` builds the ASGI app; ``QueryService`` owns the store reader and
keeps it caught up with the consumer's primary instance.
"""
