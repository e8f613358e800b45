"""URLs for the remember-me, timeout and device tests (``@pytest.mark.urls``)."""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.urls import path

from django_redisstore.views import RememberMeLoginView, RememberMeMixin

from .urls import urlpatterns as engine_urlpatterns


class KeepMeForm(AuthenticationForm):
    """A project's own form: its box has a name of its own."""

    keep_me = forms.BooleanField(required=False)


class OwnFormLoginView(RememberMeMixin, LoginView):
    form_class = KeepMeForm
    remember_me_field = "keep_me"
    remember_me_age = 3600


class PlainFormLoginView(RememberMeMixin, LoginView):
    form_class = AuthenticationForm  # no remember_me field: a configuration error


urlpatterns = [
    *engine_urlpatterns,
    path("login/", RememberMeLoginView.as_view()),
    path("login-redirect/", RememberMeLoginView.as_view(redirect_authenticated_user=True)),
    path("login-own-form/", OwnFormLoginView.as_view()),
    path("login-plain-form/", PlainFormLoginView.as_view()),
]
