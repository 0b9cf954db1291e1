"""The WSGI application (gunicorn in production, the bench and run-portal's server through it)."""

import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploy_portal.settings")
application = get_wsgi_application()

# Import every view now rather than on the first request, then take all that is loaded (about 100,000
# objects) out of the cyclic collector's sight: its full collections, one every few dozen requests,
# then walk only what requests leave behind instead of stalling a request for tens of milliseconds.
get_resolver().url_patterns  # noqa: B018 (loads the URLconf)
gc.freeze()
