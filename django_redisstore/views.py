"""The package's views: a "Remember me" sign-in, and the "Your sessions" pages.

``login()`` cycles the session key (or flushes the session when another user was signed in), so
an expiry set before it is either thrown away with the old session or carried over by chance.
The mixin lets ``LoginView`` sign the user in first and only then sets the expiry of the new
session, which ``SessionMiddleware`` writes to Redis and to the cookie in one go: both agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.auth.views import LoginView
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.timesince import timesince
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy
from django.utils.translation import ngettext
from django.views.decorators.csrf import csrf_protect
from django.views.generic import TemplateView, View

from . import keys, limits, signals
from .conf import conf, to_seconds
from .exceptions import TooManySessions
from .forms import RememberMeAuthenticationForm
from .index import SessionInfo, end_user_sessions, user_sessions

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

    With ``REDISSTORE_MAX_SESSIONS_POLICY = "refuse"``, a sign-in beyond
    ``REDISSTORE_MAX_SESSIONS_PER_USER`` shows the form again with ``too_many_sessions_message``
    as a non-field error (code ``"too_many_sessions"``), and the visitor stays signed out.
    """

    form_class: Any = RememberMeAuthenticationForm
    #: The name of the boolean form field that asks to be remembered.
    remember_me_field = "remember_me"
    #: Seconds (or a timedelta) a remembered sign-in lasts; None: ``REDISSTORE_REMEMBER_ME_AGE``.
    remember_me_age: int | timedelta | None = None
    #: The form error of a sign-in refused by the per-user limit.
    too_many_sessions_message = _lazy(
        "You are signed in on too many devices. Sign out on one of them, then try again."
    )

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
        with limits.deferred(self.request):
            response = super().form_valid(form)  # login(): the session now has its new key
        self.request.session.set_expiry(self.get_remember_me_age() if remember else 0)
        try:
            limits.save_sign_in(self.request)  # with a per-user limit: its verdict, now
        except TooManySessions:
            self.request.session.set_expiry(None)  # nothing of the refused sign-in is kept
            form.add_error(
                None, ValidationError(self.too_many_sessions_message, code="too_many_sessions")
            )
            return self.form_invalid(form)
        return response


class RememberMeLoginView(RememberMeMixin, LoginView):
    """``LoginView`` with a "Remember me" box: ``path("accounts/login/", RememberMeLoginView
    .as_view())``. Its template gets the form with ``username``, ``password`` and
    ``remember_me``."""


# "Your sessions": the list, "sign out the others", "sign out that one" ---------------------------


@dataclass(frozen=True)
class ListedSession:
    """One row of the sessions page: a live session, and whether it is the request's own."""

    info: SessionInfo
    current: bool

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def label(self) -> str:
        """The browser ("Firefox on Linux"), or "Unknown device" without a device record."""
        return self.info.device.label if self.info.device else _("Unknown device")

    @property
    def ip(self) -> str:
        return self.info.device.ip if self.info.device else ""

    @property
    def last_seen(self) -> datetime:
        """The device record's "last seen", else the session's last write."""
        device = self.info.device
        return device.last_seen if device and device.last_seen else self.info.saved

    @property
    def seen(self) -> str:
        """``last_seen`` in words: "just now", "5 minutes ago", "2 days, 3 hours ago"."""
        if (timezone.now() - self.last_seen).total_seconds() < 60:
            return _("just now")
        return _("%(time)s ago") % {"time": timesince(self.last_seen)}


def current_session_id(request: HttpRequest) -> str | None:
    """The hashed id of the request's own session, or None when it has none."""
    key = request.session.session_key
    return keys.session_id(key) if key else None


class SessionsMixin(LoginRequiredMixin):
    """What the three sessions views share: sign-in required, the list, the way back.

    Subclass a view and override ``get_sessions`` (or ``template_name``, ``success_url``) to
    change what a site shows.
    """

    request: HttpRequest
    #: Where the actions send the browser back; None: the list (``redisstore:sessions``).
    success_url: str | None = None

    def get_sessions(self) -> list[ListedSession]:
        """The user's live sessions, the current one first, then the most recently seen."""
        current = current_session_id(self.request)
        rows = [
            ListedSession(info, info.id == current) for info in user_sessions(self.request.user)
        ]
        rows.sort(key=lambda row: (not row.current, -row.last_seen.timestamp()))
        return rows

    def get_success_url(self) -> str:
        if self.success_url is not None:
            return str(self.success_url)
        match = self.request.resolver_match
        namespace = match.namespace if match and match.namespace else "redisstore"
        return reverse(f"{namespace}:sessions")

    def tell(self, text: str) -> None:
        """A success message, when the messages framework is there to show it."""
        messages.success(self.request, text, fail_silently=True)


class SessionListView(SessionsMixin, TemplateView):
    """``redisstore:sessions``: the signed-in user's live sessions, with device, IP address,
    last seen and expiry, the current one marked; a button to end each other one, and all."""

    template_name = "django_redisstore/sessions.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        if "sessions" not in context:  # the refusal passes its own
            context["sessions"] = self.get_sessions()
        context.setdefault("base_template", conf.BASE_TEMPLATE)
        return context


@method_decorator(csrf_protect, name="dispatch")
class EndOtherSessionsView(SessionsMixin, View):
    """``redisstore:end-others`` (POST): end every session of the user but this one."""

    http_method_names = ("post",)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        ended = end_user_sessions(
            request.user, keep=request.session.session_key, reason=signals.USER
        )
        self.tell(
            ngettext(
                "Signed out %(count)d other session.",
                "Signed out %(count)d other sessions.",
                ended,
            )
            % {"count": ended}
        )
        return HttpResponseRedirect(self.get_success_url())


@method_decorator(csrf_protect, name="dispatch")
class EndSessionView(SessionsMixin, View):
    """``redisstore:end-session`` (POST): end one of the user's sessions, named by its hashed id.

    Another user's session, or one that is gone, is a 404. The current session is refused (400,
    the list with an explanation): signing out is the logout view's job, which also clears the
    cookie and runs ``user_logged_out``.
    """

    http_method_names = ("post",)
    #: The view whose page shows the refusal (a site's own subclass of the list, if it has one).
    list_view_class: type[SessionListView] = SessionListView

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        session_id = str(kwargs["session_id"])
        if session_id == current_session_id(request):
            return self.refuse_current()
        if not end_user_sessions(request.user, ids={session_id}, reason=signals.USER):
            raise Http404(_("No such session of yours."))
        self.tell(_("Signed out that session."))
        return HttpResponseRedirect(self.get_success_url())

    def refuse_current(self) -> HttpResponse:
        error = _("This is the session you are using: sign out to end it.")
        view = self.list_view_class(request=self.request, args=(), kwargs={})
        return view.render_to_response(view.get_context_data(error=error), status=400)
