"""Who may sign in to the dashboards, and what their role lets them see.

The roles are data (:data:`ROLES`): each says whether its users see contact details (email, phone, full name).
Which pages a role opens is declared by each page file (its ``PAGE["roles"]``, see dashboards/registry.py).

The users file (setting ``users_file``) is streamlit-authenticator's credentials file: per user a display name, a
bcrypt hash of the password and a list of roles (one role here), plus the signing key of the "stay signed in"
cookie, made when the file is created. ``crm users add|list|remove`` maintain it; it is written whole (a
temporary file renamed into place) and readable by its owner only.

With no users in the file the dashboards only listen on this machine (:func:`is_loopback`), where everyone is admin.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import yaml

from pipelines.privacy import make_private

COOKIE_NAME = "crm_dashboards"
COOKIE_EXPIRY_DAYS = 7
MIN_PASSWORD_CHARACTERS = 8
# bcrypt reads at most 72 bytes of a password (bcrypt 5 refuses longer ones rather than cutting them).
MAX_PASSWORD_BYTES = 72
_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")


@dataclass(frozen=True)
class Role:
    name: str
    description: str
    contacts: bool


ROLES: dict[str, Role] = {
    role.name: role
    for role in (
        Role("executive", "headline pages (loyalty, model quality); no contact details", contacts=False),
        Role("analyst", "every analysis page; contact details nowhere, not even in the lookup", contacts=False),
        Role("marketing", "loyalty, segments and the customer lookup, with contact details", contacts=True),
        Role("service", "the customer lookup, with contact details", contacts=True),
        Role("admin", "every page, with contact details", contacts=True),
    )
}


class UsersError(ValueError):
    """A name, role or password that cannot be used, or a users file that cannot be read; the message says why."""


def roles_listed() -> str:
    return ", ".join(ROLES)


def no_users_message() -> str:
    """What the CLI and the dashboards say when asked to serve other machines with no users configured."""
    return (
        "No users are configured, so the dashboards only listen on this machine. Add users first: "
        f"crm users add NAME --role ROLE (roles: {roles_listed()})."
    )


def is_loopback(address: str | None) -> bool:
    """Whether ``address`` (Streamlit's server.address) reaches this machine only: localhost, 127.x or ::1. An
    empty address is not: Streamlit then listens on every interface."""
    text = (address or "").strip().strip("[]")
    if text.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def check_name(name: str) -> str:
    """The user name as stored: lower case, because streamlit-authenticator compares user names in lower case."""
    if not _NAME.fullmatch(name):
        raise UsersError(
            f"user name {name!r} must be 1 to 64 characters, each a letter, a digit or one of . _ @ - "
            "(an email address is fine)"
        )
    return name.lower()


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise UsersError(f"unknown role {role!r}; the roles are: {roles_listed()}")
    return ROLES[role]


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARACTERS:
        raise UsersError(f"the password must have at least {MIN_PASSWORD_CHARACTERS} characters")
    if password != password.strip():
        raise UsersError("the password must not begin or end with a space (the sign-in form drops them)")
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise UsersError(f"the password must be at most {MAX_PASSWORD_BYTES} bytes long (bcrypt reads no more)")
    return password


def hash_password(password: str) -> str:
    """The bcrypt hash streamlit-authenticator's ``Hasher.hash`` makes (bcrypt itself: importing that package
    outside a running app fills a terminal with Streamlit's bare-mode warnings)."""
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt()).decode("ascii")


# --- the users file ---------------------------------------------------------------------------------------------


def read_users_file(path: Path) -> dict:
    """The file's content in streamlit-authenticator's shape (``credentials.usernames``, ``cookie``); an empty
    shape without a cookie when the file does not exist yet."""
    path = Path(path)
    if not path.exists():
        return {"credentials": {"usernames": {}}}
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise UsersError(f"the users file {path} is not valid YAML: {error}") from error
    if not isinstance(content, dict):
        raise UsersError(f"the users file {path} must hold credentials: and cookie: sections")
    credentials = content.setdefault("credentials", {}) or {}
    content["credentials"] = credentials
    credentials["usernames"] = credentials.get("usernames") or {}
    return content


def users(path: Path) -> dict[str, dict]:
    """name -> {name, password, roles} of every user in the file (empty when there is no file)."""
    return read_users_file(path)["credentials"]["usernames"]


def role_of(entry: dict) -> str | None:
    """The role of a users-file entry (its first role), None when it has none."""
    roles = entry.get("roles") or []
    return str(roles[0]) if roles else None


def write_users_file(path: Path, content: dict) -> Path:
    """Write the users file whole and private: a temporary file beside it, readable by its owner only before
    anything is written into it, renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    temporary.touch(mode=0o600)
    make_private(temporary)
    temporary.write_text(yaml.safe_dump(content, sort_keys=False, allow_unicode=True), encoding="utf-8")
    os.replace(temporary, path)
    return path


def add_user(path: Path, name: str, role: str, password: str) -> bool:
    """Add user ``name`` with ``role`` and a bcrypt hash of ``password``, or replace an existing user's role and
    password; return whether the user existed. The cookie's signing key is made with the file."""
    name = check_name(name)
    check_role(role)
    check_password(password)
    content = read_users_file(path)
    known = content["credentials"]["usernames"]
    existed = name in known
    known[name] = {"name": name, "password": hash_password(password), "roles": [role]}
    cookie = content.get("cookie") or {}
    content["cookie"] = {
        "name": cookie.get("name") or COOKIE_NAME,
        "key": cookie.get("key") or secrets.token_hex(32),
        "expiry_days": cookie.get("expiry_days", COOKIE_EXPIRY_DAYS),
    }
    write_users_file(path, content)
    return existed


def remove_user(path: Path, name: str) -> None:
    content = read_users_file(path)
    known = content["credentials"]["usernames"]
    if name.lower() not in known:
        listed = ", ".join(known) or "none"
        raise UsersError(f"there is no user {name!r} in {path} (users: {listed})")
    del known[name.lower()]
    write_users_file(path, content)


def list_users(path: Path) -> list[tuple[str, str | None]]:
    """(name, role) of every user, by name; never the password hashes."""
    return sorted((name, role_of(entry)) for name, entry in users(path).items())
