"""The sessions pages: ``path("accounts/", include("django_redisstore.urls"))``.

Names, in the application namespace ``redisstore``: ``sessions`` (the list),
``end-others`` and ``end-session`` (POST only).
"""

from __future__ import annotations

from django.urls import path

from .views import EndOtherSessionsView, EndSessionView, SessionListView

app_name = "redisstore"

urlpatterns = [
    path("sessions/", SessionListView.as_view(), name="sessions"),
    path("sessions/end-others/", EndOtherSessionsView.as_view(), name="end-others"),
    path("sessions/<str:session_id>/end/", EndSessionView.as_view(), name="end-session"),
]
