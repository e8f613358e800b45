"""A custom user model: signs in with an email address, a UUID for its primary key."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models


class MemberManager(BaseUserManager):
    def create_user(self, email: str, password: str | None = None, **extra: Any) -> Member:
        member = self.model(email=email, **extra)
        member.set_password(password)
        member.save()
        return member

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> Member:
        return self.create_user(email, password, is_staff=True, is_superuser=True, **extra)


class Member(AbstractBaseUser, PermissionsMixin):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(unique=True)
    is_staff = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)

    USERNAME_FIELD = "email"
    objects = MemberManager()

    def __str__(self) -> str:
        return self.email
