"""The project package. Loading it loads the Celery app (as cookiecutter-django does).

Every process that loads Django (the api's worker processes, the bridge, manage.py) then publishes
through our app and its Redis broker: without it, `current_app` in the api is Celery's default app,
which would publish the callback task of a synchronous decision to AMQP on localhost.
"""

from workers import app as celery_app

__all__ = ("celery_app",)
