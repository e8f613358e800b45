"""The admin's sessions panel, "Sign out everywhere" and its action, on a site with the admin.

Run by tests/test_admin.py in a process of its own (settings: tests/in_admin/settings.py), once
with Django's ``User`` and once with a custom user model.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

import django_redisstore
from django_redisstore import keys
from django_redisstore.admin import UserSessionsAdminMixin, register

pytestmark = pytest.mark.django_db

User = get_user_model()
opts = User._meta
PREFIX = f"/admin/{opts.app_label}/{opts.model_name}"


def make_user(name: str, *, staff: bool = False, perms: tuple[str, ...] = ()) -> Any:
    user = User.objects.create_user(**{User.USERNAME_FIELD: f"{name}@example.com"}, password="pw")
    if staff:
        user.is_staff = True
        user.save()
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=f"{codename}_{opts.model_name}"))
    return user


def superuser() -> Any:
    user = make_user("root", staff=True)
    user.is_superuser = True
    user.save()
    return user


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def hashed_id(client: Client) -> str:
    return keys.session_id(client.cookies[settings.SESSION_COOKIE_NAME].value)


def live(user: Any) -> set[str]:
    return {info.id for info in django_redisstore.user_sessions(user)}


def change_url(user: Any) -> str:
    return f"{PREFIX}/{quote(user.pk)}/change/"


def sign_out_url(user: Any) -> str:
    return f"{PREFIX}/{quote(user.pk)}/sign-out-everywhere/"


def test_the_registered_user_admin_got_the_mixin() -> None:
    registered = admin.site._registry[User]
    assert isinstance(registered, UserSessionsAdminMixin)
    site_class = type(registered).__bases__[1]
    expected = "MemberAdmin" if opts.model_name == "member" else "UserAdmin"
    assert site_class.__name__ == expected  # the site's own class, extended
    assert type(registered).__name__ == expected


def test_the_change_page_shows_the_users_live_sessions_and_the_button() -> None:
    target = make_user("alice")
    phones = [signed_in(target), signed_in(target)]
    staff = signed_in(superuser())

    page = staff.get(change_url(target)).content.decode()

    assert 'id="redisstore-sessions"' in page and "Live sessions" in page
    for phone in phones:
        assert f'data-id="{hashed_id(phone)}"' in page
    assert f'action="{sign_out_url(target)}"' in page and "Sign out everywhere" in page
    assert f"{opts.model_name}_form" in page  # the change form itself is still there


def test_the_add_page_has_no_panel() -> None:
    response = signed_in(superuser()).get(f"{PREFIX}/add/")
    assert response.status_code == 200
    assert 'id="redisstore-sessions"' not in response.content.decode()


def test_sign_out_everywhere_ends_the_users_sessions_and_logs_it(ended: list[Any]) -> None:
    target, other = make_user("alice"), make_user("bob")
    doomed = {hashed_id(signed_in(target)), hashed_id(signed_in(target))}
    spared = signed_in(other)
    root = superuser()
    staff = signed_in(root)

    response = staff.post(sign_out_url(target), follow=True)

    assert response.redirect_chain == [(change_url(target), 302)]
    assert "out everywhere: 2 sessions ended." in response.content.decode()
    assert live(target) == set()
    assert live(other) == {hashed_id(spared)}
    assert sorted(ended) == sorted((str(target.pk), sid, "admin") for sid in doomed)
    (entry,) = LogEntry.objects.all()
    assert entry.user_id == root.pk and entry.object_id == str(target.pk)
    assert entry.action_flag == CHANGE
    assert entry.get_change_message() == "Signed out everywhere: 2 sessions ended."


def test_signing_oneself_out_everywhere_keeps_this_browser() -> None:
    root = superuser()
    elsewhere, here = signed_in(root), signed_in(root)

    here.post(sign_out_url(root))

    assert live(root) == {hashed_id(here)}
    assert hashed_id(elsewhere) not in live(root)


def test_staff_with_the_change_permission_only_may_use_it() -> None:
    target = make_user("alice")
    session = hashed_id(signed_in(target))
    viewer = signed_in(make_user("viewer", staff=True, perms=("view",)))
    editor = signed_in(make_user("editor", staff=True, perms=("view", "change")))

    assert viewer.get(change_url(target)).status_code == 200
    assert 'id="redisstore-sessions"' not in viewer.get(change_url(target)).content.decode()
    assert viewer.post(sign_out_url(target)).status_code == 403
    assert live(target) == {session} and not LogEntry.objects.exists()

    assert 'id="redisstore-sessions"' in editor.get(change_url(target)).content.decode()
    assert editor.post(sign_out_url(target)).status_code == 302
    assert live(target) == set() and LogEntry.objects.count() == 1


def test_non_staff_and_anonymous_visitors_are_sent_to_the_admin_login() -> None:
    target = make_user("alice")
    session = hashed_id(signed_in(target))
    for client in (Client(), signed_in(make_user("mallory", perms=("change",)))):
        response = client.post(sign_out_url(target))
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")
    assert live(target) == {session}


def test_the_button_takes_a_post_with_a_csrf_token() -> None:
    target = make_user("alice")
    session = hashed_id(signed_in(target))
    staff = Client(enforce_csrf_checks=True)
    staff.force_login(superuser())

    assert staff.get(sign_out_url(target)).status_code == 405
    assert staff.post(sign_out_url(target)).status_code == 403
    assert live(target) == {session}


def test_an_unknown_user_is_a_404() -> None:
    staff = signed_in(superuser())
    missing = "00000000-0000-0000-0000-000000000000" if opts.model_name == "member" else "999"
    assert staff.post(f"{PREFIX}/{missing}/sign-out-everywhere/").status_code == 404


def action(client: Client, *users: Any) -> Any:
    return client.post(
        f"{PREFIX}/",
        {
            "action": "redisstore_sign_out_everywhere",
            "_selected_action": [str(user.pk) for user in users],
        },
        follow=True,
    )


def test_the_changelist_action_signs_the_selected_users_out(ended: list[Any]) -> None:
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    for user in (alice, alice, bob):
        signed_in(user)
    kept = hashed_id(signed_in(carol))
    staff = signed_in(superuser())
    assert "Sign out everywhere" in staff.get(f"{PREFIX}/").content.decode()  # offered

    response = action(staff, alice, bob)

    assert "Signed 2 users out everywhere: 3 sessions ended." in response.content.decode()
    assert live(alice) == live(bob) == set() and live(carol) == {kept}
    assert len(ended) == 3 and {reason for _, _, reason in ended} == {"admin"}
    messages = sorted(e.get_change_message() for e in LogEntry.objects.all())
    assert messages == [
        "Signed out everywhere: 1 session ended.",
        "Signed out everywhere: 2 sessions ended.",
    ]


def test_the_action_is_not_offered_without_the_change_permission() -> None:
    alice = make_user("alice")
    session = hashed_id(signed_in(alice))
    viewer = signed_in(make_user("viewer", staff=True, perms=("view",)))

    assert "redisstore_sign_out_everywhere" not in viewer.get(f"{PREFIX}/").content.decode()
    action(viewer, alice)
    assert live(alice) == {session} and not LogEntry.objects.exists()


class SiteUserAdmin(admin.ModelAdmin):
    pass


def test_register_wraps_the_registered_class_unless_switched_off(settings: Any) -> None:
    site = admin.AdminSite(name="other")
    site.register(User, SiteUserAdmin)

    settings.REDISSTORE_ADMIN = False
    assert register(site) is False
    assert type(site._registry[User]) is SiteUserAdmin

    settings.REDISSTORE_ADMIN = True
    assert register(site) is True
    assert isinstance(site._registry[User], SiteUserAdmin)
    assert isinstance(site._registry[User], UserSessionsAdminMixin)
    assert register(site) is False  # once is enough
