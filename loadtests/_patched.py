"""Importing this first patches the standard library for gevent (as importing locust does).

The replay runs many requests on greenlets; sockets, sleeps and locks must be gevent's
before any other module grabs the originals.
"""

from gevent import monkey

monkey.patch_all()
