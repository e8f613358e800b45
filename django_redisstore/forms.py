"""The sign-in form with a "Remember me" box, for ``views.RememberMeMixin``."""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.utils.translation import gettext_lazy as _


class RememberMeAuthenticationForm(AuthenticationForm):
    """Django's ``AuthenticationForm`` plus an optional ``remember_me`` checkbox.

    Unchecked, the session ends when the browser closes; checked, it lasts
    ``REDISSTORE_REMEMBER_ME_AGE``. Any form with a boolean field of that name works with the
    mixin as well: this one only spares writing it.
    """

    remember_me = forms.BooleanField(label=_("Remember me"), required=False)
