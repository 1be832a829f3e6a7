"""The WSGI entry point appdeb's web unit serves (app.yaml: wsgi.app)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pollsite.settings")
application = get_wsgi_application()
