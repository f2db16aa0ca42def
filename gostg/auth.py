"""Kept for imports that predate ``gostg.policy.auth``, where authenticators now live."""
from .policy.auth import Auther, AutherGroup, SkipAuth, first_credentials, parse_auth_lines

__all__ = ["Auther", "AutherGroup", "SkipAuth", "first_credentials", "parse_auth_lines"]
