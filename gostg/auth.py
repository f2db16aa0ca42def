"""Authenticators: a user table checked in constant time; the user name becomes the client ID."""
import hmac


class Auther:
    def __init__(self, name, users):
        self.name = name
        self._users = dict(users)  # username → password

    def authenticate(self, username, password):
        """→ client ID (the username) or None."""
        want = self._users.get(username)
        # compare even for unknown users so timing does not reveal which names exist
        ok = hmac.compare_digest((want if want is not None else "\0").encode(), (password or "").encode())
        return username if ok and want is not None else None


class AutherGroup:
    """Any member passes (GOST's group rule); member names are looked up at use time."""

    def __init__(self, names, registries):
        self.names = names
        self.registries = registries

    def authenticate(self, username, password):
        for n in self.names:
            a = self.registries.authers.get(n)
            if a is not None:
                cid = a.authenticate(username, password)
                if cid is not None:
                    return cid
        return None
