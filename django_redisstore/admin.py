"""The Django admin: a user's live sessions, and "Sign out everywhere".

``UserSessionsAdminMixin`` adds to a user ``ModelAdmin``

* on the change page of a user, a panel listing the user's live sessions (device, IP address,
  last seen, expiry) and a "Sign out everywhere" button (a POST of its own, CSRF-protected);
* on the changelist, the action "Sign out everywhere" for the selected users.

Only staff with the change permission on the user model see the panel or the action, and each
use is written to the admin log (``LogEntry``) with the number of sessions it ended. The acting
admin's own session is kept, so that signing oneself out everywhere leaves this browser
signed in.

With ``REDISSTORE_ADMIN`` (default True), the app's ``ready()`` calls ``register()``, which
wraps whatever admin class is registered for ``get_user_model()`` on the default admin site.
Sites that build their own user admin set ``REDISSTORE_ADMIN = False`` and put the mixin first
in their class's bases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.contrib import admin
from django.contrib.admin.utils import quote, unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import select_template
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_POST

from . import signals
from .conf import conf
from .index import end_user_sessions, user_sessions
from .views import ListedSession, current_session_id

if TYPE_CHECKING:
    _Base = admin.ModelAdmin[Any]
else:
    _Base = object

#: The change form template that adds the sessions panel to the registered one.
CHANGE_FORM_TEMPLATE = "django_redisstore/admin/user_change_form.html"
ACTION_NAME = "redisstore_sign_out_everywhere"


class UserSessionsAdminMixin(_Base):
    """For the ``ModelAdmin`` of the user model: put it first in the bases."""

    def get_urls(self) -> list[URLPattern]:
        opts = self.opts
        sign_out = path(
            "<path:object_id>/sign-out-everywhere/",
            self.admin_site.admin_view(require_POST(self.sign_out_everywhere_view)),
            name=f"{opts.app_label}_{opts.model_name}_sign_out_everywhere",
        )
        return [sign_out, *super().get_urls()]  # before the admin's catch-all "<object_id>/"

    # The change page ----------------------------------------------------------------------------

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> HttpResponse:
        response = super().render_change_form(request, context, add, change, form_url, obj)
        if (
            add
            or obj is None
            or not isinstance(response, TemplateResponse)
            or response.context_data is None
            or not self.has_change_permission(request, obj)
        ):
            return response
        names = response.template_name
        parent = (
            names
            if not isinstance(names, (str, list, tuple))
            else select_template([names] if isinstance(names, str) else list(names))
        )
        current = current_session_id(request)
        response.context_data.update(
            redisstore_parent=parent,
            redisstore_sessions=[
                ListedSession(info, info.id == current) for info in user_sessions(obj)
            ],
            redisstore_sign_out_url=reverse(
                f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}"
                "_sign_out_everywhere",
                args=[quote(obj.pk)],
            ),
        )
        response.template_name = CHANGE_FORM_TEMPLATE
        return response

    def sign_out_everywhere_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST from the change page's button: end every session of the user, then go back."""
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(_("No such user."))
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        ended = self.sign_out_everywhere(request, obj)
        self.message_user(
            request,
            ngettext(
                "Signed %(user)s out everywhere: %(count)d session ended.",
                "Signed %(user)s out everywhere: %(count)d sessions ended.",
                ended,
            )
            % {"user": obj, "count": ended},
        )
        opts = self.opts
        return HttpResponseRedirect(
            reverse(
                f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_change",
                args=[quote(obj.pk)],
            )
        )

    def sign_out_everywhere(self, request: HttpRequest, user: Model) -> int:
        """End ``user``'s sessions (but the acting admin's own), log it; how many ended."""
        ended = end_user_sessions(user, keep=request.session.session_key, reason=signals.ADMIN)
        self.log_change(
            request,
            user,
            ngettext(
                "Signed out everywhere: %(count)d session ended.",
                "Signed out everywhere: %(count)d sessions ended.",
                ended,
            )
            % {"count": ended},
        )
        return ended

    # The changelist action ----------------------------------------------------------------------

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        # Django 6.1 passes where the actions are for (the change list or, new there, the change
        # form) and deprecates overrides without the parameter; older versions call with the
        # request alone. "Sign out everywhere" is a change-list action.
        if action_location is None:
            actions: dict[str, Any] = super().get_actions(request)
        else:
            actions = super().get_actions(request, action_location=action_location)  # type: ignore[call-arg]
            if getattr(action_location, "value", None) != "CHANGE_LIST":
                return actions
        if self.actions is not None and self.has_change_permission(request):
            action = self.get_action(ACTION_NAME)
            if action is not None:
                actions[ACTION_NAME] = action
        return actions

    @admin.action(description=gettext_lazy("Sign out everywhere"))
    def redisstore_sign_out_everywhere(
        self, request: HttpRequest, queryset: QuerySet[Any]
    ) -> None:
        if not self.has_change_permission(request):
            raise PermissionDenied
        users = list(queryset)
        ended = sum(self.sign_out_everywhere(request, user) for user in users)
        self.message_user(
            request,
            ngettext(
                "Signed %(users)d user out everywhere: %(count)d sessions ended.",
                "Signed %(users)d users out everywhere: %(count)d sessions ended.",
                len(users),
            )
            % {"users": len(users), "count": ended},
        )


def register(site: admin.AdminSite | None = None) -> bool:
    """Give the admin registered for the user model on ``site`` (default: ``admin.site``) the
    mixin: the registered class is subclassed and registered again. True if it did.

    Does nothing with ``REDISSTORE_ADMIN = False``, when no admin is registered for the user
    model, or when the registered one has the mixin already.
    """
    if not conf.ADMIN:
        return False
    site = admin.site if site is None else site
    user_model = get_user_model()
    registered = site._registry.get(user_model)
    if registered is None or isinstance(registered, UserSessionsAdminMixin):
        return False
    base = type(registered)
    combined = type(
        base.__name__,
        (UserSessionsAdminMixin, base),
        {"__module__": base.__module__, "__doc__": base.__doc__},
    )
    site.unregister(user_model)
    site.register(user_model, combined)
    return True


def register_after_autodiscovery() -> None:
    """What the app's ``ready()`` runs when ``django.contrib.admin`` is installed: find the
    registered user admin (running the admin's autodiscovery first, which is idempotent and
    which the admin's own ``ready()`` runs anyway), then ``register()``."""
    if not conf.ADMIN:
        return
    from django.contrib.admin.apps import AdminConfig

    if any(isinstance(config, AdminConfig) for config in apps.get_app_configs()):
        admin.autodiscover()
    register()
