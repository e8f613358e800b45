"""The demo's own pages (tests/test_demo.py serves these alone, without the admin)."""

from __future__ import annotations

from django.contrib.auth.views import LogoutView
from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", LogoutView.as_view(), name="logout"),
    path("accounts/", include("django_redisstore.urls")),  # "Your sessions"
]
