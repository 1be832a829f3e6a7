from django.urls import path

from polls import views

urlpatterns = [
    path("", views.index),
    path("health", views.health),
    path("api/questions", views.questions),
    path("api/vote/<int:choice_id>", views.vote),
]
