from django.conf import settings
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import path

from polls import views

urlpatterns = [
    path("", views.index),
    path("health", views.health),
    path("api/questions", views.questions),
    path("api/vote/<int:choice_id>", views.vote),
]
if settings.DEBUG:  # development only: on a node nginx serves staticfiles/ at /static/
    urlpatterns += staticfiles_urlpatterns()
