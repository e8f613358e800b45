from __future__ import annotations

from django.contrib import admin
from django.urls import path

from .account_urls import urlpatterns as demo_urlpatterns

urlpatterns = [*demo_urlpatterns, path("admin/", admin.site.urls)]
