from django.urls import path

from . import views

urlpatterns = [
    path("calls", views.place_call),
    path("calls/<str:conversation_id>", views.hang_up),
    path("sessions", views.sessions),
]
