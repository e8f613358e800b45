from __future__ import annotations

from django.contrib import admin

from .models import Member


@admin.register(Member)
class MemberAdmin(admin.ModelAdmin):
    """The site's own user admin, which the package extends."""

    list_display = ("email", "is_staff")
    search_fields = ("email",)
    exclude = ("password",)
