"""The test run's settings: the site's own, given the SECRET_KEY a site with DEBUG off must have.

Set here, before the site's settings are read (pytest-django reads them before any conftest), and inherited
by the workers and servers the tests start.
"""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-key-" + "x" * 50)

from deploy_portal.settings import *  # noqa: E402, F403

# Django's test client logs in without a request, which django-axes needs: throttling is tested on its own
# (tests/test_login_throttling.py turns it on).
AXES_ENABLED = False
