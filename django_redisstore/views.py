"""A "Remember me" sign-in that gets the order right: expiry set *after* ``login()``.

``login()`` cycles the session key (or flushes the session when another user was signed in), so
an expiry set before it is either thrown away with the old session or carried over by chance.
The mixin lets ``LoginView`` sign the user in first and only then sets the expiry of the new
session, which ``SessionMiddleware`` writes to Redis and to the cookie in one go: both agree.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.contrib.auth.views import LoginView
from django.core.exceptions import ImproperlyConfigured
from django.forms import Form
from django.http import HttpResponse

from .conf import conf, to_seconds
from .forms import RememberMeAuthenticationForm

if TYPE_CHECKING:
    _Base = LoginView
else:
    _Base = object


class RememberMeMixin(_Base):
    """For subclasses of ``django.contrib.auth.views.LoginView``: honour a ``remember_me`` box.

    Checked: a persistent cookie and a Redis TTL of ``remember_me_age`` seconds (default
    ``REDISSTORE_REMEMBER_ME_AGE``). Unchecked: a cookie that ends with the browser, and Django's
    usual server-side lifetime. Everything else (``next``, ``redirect_authenticated_user``,
    templates, the form class if you set one) is ``LoginView``'s.
    """

    form_class: Any = RememberMeAuthenticationForm
    #: The name of the boolean form field that asks to be remembered.
    remember_me_field = "remember_me"
    #: Seconds (or a timedelta) a remembered sign-in lasts; None: ``REDISSTORE_REMEMBER_ME_AGE``.
    remember_me_age: int | timedelta | None = None

    def get_remember_me_age(self) -> int:
        if self.remember_me_age is None:
            return conf.REMEMBER_ME_AGE
        return to_seconds("REMEMBER_ME_AGE", self.remember_me_age)

    def wants_to_be_remembered(self, form: Form) -> bool:
        if self.remember_me_field not in form.fields:
            raise ImproperlyConfigured(
                f"{type(self).__name__} uses {type(form).__name__}, which has no "
                f"{self.remember_me_field!r} field: add a forms.BooleanField(required=False) of "
                "that name, use django_redisstore.forms.RememberMeAuthenticationForm, or set "
                "remember_me_field."
            )
        return bool(form.cleaned_data.get(self.remember_me_field))

    def form_valid(self, form: Any) -> HttpResponse:
        remember = self.wants_to_be_remembered(form)
        response = super().form_valid(form)  # login(): the session now has its new key
        self.request.session.set_expiry(self.get_remember_me_age() if remember else 0)
        return response


class RememberMeLoginView(RememberMeMixin, LoginView):
    """``LoginView`` with a "Remember me" box: ``path("accounts/login/", RememberMeLoginView
    .as_view())``. Its template gets the form with ``username``, ``password`` and
    ``remember_me``."""
