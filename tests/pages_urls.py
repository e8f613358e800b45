"""The package's sessions pages where a site mounts them, with Django's sign-in and sign-out."""

from __future__ import annotations

from django.contrib.auth.views import LoginView, LogoutView
from django.urls import include, path

urlpatterns = [
    path("accounts/login/", LoginView.as_view(template_name="site_base.html"), name="login"),
    path("accounts/logout/", LogoutView.as_view(), name="logout"),
    path("accounts/", include("django_redisstore.urls")),
]
