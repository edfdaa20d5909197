import os

from django.core.wsgi import get_wsgi_application

from project.edge import HttpEdge

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

# Django's application inside the HTTP/1.1 rules its server (granian) leaves to it (project/edge.py).
application = HttpEdge(get_wsgi_application())
