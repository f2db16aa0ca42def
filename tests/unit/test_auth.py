"""gostg.policy.auth: authers (inline + file + reload), groups, skipauth, client credentials.
Vectors are GOST's docs examples (concepts/auth.md) and x/auth semantics."""
import pytest
from hypothesis import given, strategies as st

from gostg.config.build import _auth, _auther, build_auther
from gostg.errors import ConfigError
from gostg.config.metadata import Metadata
from gostg.policy.auth import Auther, AutherGroup, SkipAuth, first_credentials, parse_auth_lines
from gostg.core.registry import Registries
from gostg.policy.group import MissingReference


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


# GOST docs, "File" data source: '#' starts a comment only at the start of a line
DOCS_FILE = """# username password

admin           #123456
test\\user001    123456
test.user@002   12345678
"""


@pytest.mark.parametrize("line,expected", [
    ("user pass", {"user": "pass"}),
    ("user\tpass", {"user": "pass"}),
    ("  user    pass  ", {"user": "pass"}),
    ("user", {"user": ""}),
    ("user pass with spaces", {"user": "pass with spaces"}),
    ("# user pass", {}),
    ("", {}),
    ("admin           #123456", {"admin": "#123456"}),
])
def test_parse_auth_lines(line, expected):
    assert parse_auth_lines([line]) == expected


def test_docs_file_example(tmp_path):
    f = tmp_path / "auth"
    f.write_text(DOCS_FILE)
    a = Auther("auther-0", file=str(f))
    assert a.users == {"admin": "#123456", "test\\user001": "123456", "test.user@002": "12345678"}
    assert a.authenticate("admin", "#123456") == "admin"
    assert a.authenticate("test.user@002", "12345678") == "test.user@002"
    assert a.authenticate("admin", "123456") is None


@pytest.mark.parametrize("user,password,expected", [
    ("user1", "pass1", "user1"),      # the user name is the client ID
    ("user2", "pass2", "user2"),
    ("user1", "pass2", None),         # someone else's password
    ("user1", "", None),
    ("user3", "pass1", None),         # unknown user
    ("", "", None),
    ("USER1", "pass1", None),         # names are case-sensitive
    ("nopass", "anything", "nopass"),  # "" in the table: any password passes
    ("nopass", "", "nopass"),
])
def test_inline_table(user, password, expected):
    a = Auther("auther-0", {"user1": "pass1", "user2": "pass2", "nopass": ""})
    assert a.authenticate(user, password) == expected


def test_empty_table_refuses_everyone():
    assert Auther("a", {}).authenticate("", "") is None
    assert Auther("a", {}).authenticate("x", "y") is None


def test_file_overrides_inline_and_reload(tmp_path):
    f = tmp_path / "auth"
    f.write_text("user1 fromfile\n")
    clock = Clock()
    a = Auther("a", {"user1": "inline", "user2": "two"}, file=str(f), reload=10, clock=clock)
    assert a.authenticate("user1", "fromfile") == "user1"
    assert a.authenticate("user1", "inline") is None
    assert a.authenticate("user2", "two") == "user2"
    f.write_text("user1 fromfile\nuser3 three\n")
    assert a.authenticate("user3", "three") is None     # period not over
    clock.t += 11
    assert a.authenticate("user3", "three") == "user3"
    f.write_text("user3 three\n")                       # user1 removed from the file
    clock.t += 11
    assert a.authenticate("user1", "fromfile") is None
    assert a.authenticate("user1", "inline") == "user1"  # the inline entry shows again


def test_vanished_file_keeps_last_table(tmp_path):
    f = tmp_path / "auth"
    f.write_text("u p\n")
    clock = Clock()
    a = Auther("a", file=str(f), reload=1, clock=clock)
    f.unlink()
    clock.t += 2
    assert a.authenticate("u", "p") == "u"


def test_group_any_passes_and_late_binding():
    reg = Registries()
    reg.authers.set("auther-0", Auther("auther-0", {"user1": "pass1"}))
    reg.authers.set("auther-1", Auther("auther-1", {"user2": "pass2"}))
    g = AutherGroup(["auther-0", "auther-1"], reg)
    assert g.authenticate("user1", "pass1") == "user1"
    assert g.authenticate("user2", "pass2") == "user2"
    assert g.authenticate("user2", "pass1") is None
    reg.authers.set("auther-1", Auther("auther-1", {"user9": "p9"}))   # replaced, as by the API
    assert g.authenticate("user2", "pass2") is None
    assert g.authenticate("user9", "p9") == "user9"
    assert AutherGroup([], reg).authenticate("user1", "pass1") is None
    # fail closed: a member that does not resolve refuses everyone (the handler logs it)
    with pytest.raises(MissingReference, match="auther 'missing'"):
        AutherGroup(["auther-0", "missing"], reg).authenticate("user1", "pass1")


@pytest.mark.parametrize("client,skips", [
    ("192.168.1.100", True), ("10.1.2.3", True), ("10.255.255.255", True),
    ("11.0.0.1", False), ("192.168.1.101", False), ("::1", True), ("::ffff:10.0.0.7", True),
    ("[::1]", True), ("2001:db8::1", False), ("", False), (None, False), ("not-an-ip", False),
    ("172.16.0.3", True), ("172.16.0.6", False),
])
def test_skipauth_networks(client, skips):
    inner = Auther("a", {"u": "p"})
    s = SkipAuth(inner, ["192.168.1.100", "10.0.0.0/8", "::1", "bogus", "", "172.16.0.1-172.16.0.5",
                              "skip.example"])
    assert s.skips(client) is skips
    # a skipped client passes with no credentials and no client ID; others are checked
    assert s.authenticate("", "", client=client) == ("" if skips else None)
    assert s.authenticate("u", "p", client=client) == ("" if skips else "u")


def test_first_credentials(tmp_path):
    f = tmp_path / "c"
    f.write_text("# comment\n\nalice  secret pw\nbob b\n")
    assert first_credentials(str(f)) == ("alice", "secret pw")
    f.write_text("onlyuser\n")
    assert first_credentials(str(f)) == ("onlyuser", "")
    f.write_text("# nothing\n")
    assert first_credentials(str(f)) is None
    assert first_credentials(str(tmp_path / "missing")) is None


# --- config building ----------------------------------------------------------------------

def test_build_auther_docs_example(tmp_path):
    f = tmp_path / "auth"
    f.write_text(DOCS_FILE)
    a = build_auther({"name": "auther-0", "auths": [{"username": "user1", "password": "pass1"},
                                                    {"username": "", "password": "skipped"}],
                      "reload": "10s", "file": {"path": str(f)}}, "authers[0]", Registries())
    assert a.authenticate("user1", "pass1") == "user1"
    assert a.authenticate("admin", "#123456") == "admin"
    assert a.authenticate("", "skipped") is None


def test_build_auther_missing_file_names_the_key(tmp_path):
    with pytest.raises(ConfigError) as e:
        build_auther({"name": "a", "file": {"path": str(tmp_path / "nope")}}, "authers[2]", Registries())
    assert e.value.path == "authers[2].file.path"


def test_handler_auther_priority_and_skipauth():
    reg = Registries()
    reg.authers.set("au", Auther("au", {"x": "y"}))
    # auther wins over auth
    a = _auther({"auther": "au", "auth": {"username": "u", "password": "p"}}, "h", reg)
    assert a.authenticate("x", "y") == "x" and a.authenticate("u", "p") is None
    # single auth; a username-less auth means no auth at all (GOST)
    assert _auther({"auth": {"username": "u", "password": "p"}}, "h", reg).authenticate("u", "p") == "u"
    assert _auther({"auth": {"password": "p"}}, "h", reg) is None
    assert _auther({}, "h", reg) is None
    # skipauth wraps; a comma string works as in a CLI query
    s = _auther({"auth": {"username": "u", "password": "p"}}, "h", reg, Metadata({"skipauth": "127.0.0.0/8,::1"}))
    assert isinstance(s, SkipAuth)
    assert s.authenticate("", "", client="127.0.0.1") == ""
    assert s.authenticate("", "", client="10.0.0.1") is None
    # skipauth without any auther changes nothing
    assert _auther({}, "h", reg, Metadata({"skipauth": ["127.0.0.1"]})) is None


def test_client_auth_file(tmp_path):
    f = tmp_path / "c"
    f.write_text("fileuser filepass\nsecond x\n")
    assert _auth({"auth": {"username": "u", "password": "p", "file": str(f)}}, "c") == ("fileuser", "filepass")
    # an unreadable or empty file falls back to the inline credentials (GOST's Info)
    assert _auth({"auth": {"username": "u", "password": "p", "file": str(tmp_path / "no")}}, "c") == ("u", "p")
    assert _auth({}, "c") is None


@given(st.text(max_size=30), st.text(max_size=30))
def test_garbage_credentials_never_crash(user, password):
    a = Auther("a", {"u": "p", "empty": ""})
    assert a.authenticate(user, password) in (None, user)
    assert SkipAuth(a, ["10.0.0.0/8"]).authenticate(user, password, client=user) in (None, user, "")


@given(st.lists(st.text(max_size=40), max_size=20))
def test_parse_auth_lines_total(lines):
    users = parse_auth_lines(lines)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in users.items())


def test_client_id_feeds_the_hash_selector():
    """The handler stores the auther's client ID in ctx; the hash strategy keys on it, so one
    user lands on one node whatever address they come from."""
    import structlog

    from gostg.core.chain import Node
    from gostg.core.context import Context
    from gostg.handlers.base import Handler, Options
    from gostg.core.selector import Selector

    h = Handler(Metadata({}), Options(None, Auther("a", {"alice": "a1", "bob": "b1"})))
    nodes = [Node(f"n{i}", f"10.0.0.{i}:1", None, None) for i in range(8)]
    sel = Selector("hash")
    picks = set()
    for src in ("10.1.1.1:1000", "10.2.2.2:2000", "192.168.0.9:3000"):
        ctx = Context("svc", src, "127.0.0.1:8080", structlog.get_logger())
        assert h.authenticate(ctx, "alice", "a1") and ctx.client_id == "alice"
        picks.add(sel.select(nodes, ctx).name)
    assert len(picks) == 1
    ctx = Context("svc", "10.1.1.1:1000", "127.0.0.1:8080", structlog.get_logger())
    assert not h.authenticate(ctx, "alice", "wrong") and ctx.client_id == ""


def test_every_check_goes_through_one_constant_time_compare(monkeypatch):
    """Known user with a wrong password, unknown user, right password: each costs exactly one
    ``hmac.compare_digest``, so neither a password prefix nor a user name shows in the timing."""
    import gostg.policy.auth as auth_mod
    calls = []
    real = auth_mod.hmac.compare_digest
    monkeypatch.setattr(auth_mod.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    a = Auther("a", {"alice": "s3cret", "open": ""})
    for user, pw, want in (("alice", "s3creX", None), ("nobody", "s3cret", None), ("alice", "s3cret", "alice"),
                           ("open", "anything", "open")):
        calls.clear()
        assert a.authenticate(user, pw) == want
        assert len(calls) == 1 and calls[0][1] == pw.encode()
