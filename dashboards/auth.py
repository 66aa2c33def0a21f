"""Who is signed in to the dashboards, and with which role (the roles: pipelines/users.py).

Three ways in, decided by the users file (setting ``users_file``, maintained with ``crm users``):

- No users: the dashboards serve this machine only, and whoever is here is admin. On another address they refuse
  to show anything (``crm dashboard`` refuses to start them there too).
- Users, and Streamlit's single sign-on configured (an ``[auth]`` section in .streamlit/secrets.toml): the identity
  provider says who the person is; the users-file entry named by their email says their role.
- Users without single sign-on: streamlit-authenticator's password form, checked against the bcrypt hashes, with
  a signed cookie that keeps the person signed in for the file's ``cookie.expiry_days``.

The signed-in :class:`User` is kept in ``st.session_state["crm_user"]`` for the rest of the session (a test may
put one there to open a page as a given role).
"""

from __future__ import annotations

import copy
import secrets
from dataclasses import dataclass

import streamlit as st

from pipelines.settings import load_settings
from pipelines.users import (
    COOKIE_EXPIRY_DAYS,
    COOKIE_NAME,
    ROLES,
    UsersError,
    is_loopback,
    no_users_message,
    read_users_file,
    role_of,
    roles_listed,
)

SESSION_USER = "crm_user"
_AUTHENTICATOR = "crm_authenticator"
_SET_COOKIE = "crm_set_cookie"
NO_USERS_NOTE = "No users are configured: anyone on this machine is admin. Add users: crm users add NAME --role ROLE"


@dataclass(frozen=True)
class User:
    username: str
    name: str
    role: str
    contacts: bool


LOCAL_ADMIN = User(username="local", name="local", role="admin", contacts=ROLES["admin"].contacts)


def user_for(username: str, entry: dict | None, name: str | None = None) -> User:
    """The :class:`User` of a users-file entry; an error naming the problem when there is no entry or its role is
    not one of :data:`pipelines.users.ROLES`."""
    if entry is None:
        raise UsersError(
            f"{username} is not a user of these dashboards: an admin adds them with "
            f"`crm users add {username} --role ROLE` (roles: {roles_listed()})."
        )
    role = role_of(entry)
    if role not in ROLES:
        raise UsersError(
            f"{username}'s role {role!r} is not one of the roles ({roles_listed()}): an admin sets it with "
            f"`crm users add {username} --role ROLE`."
        )
    return User(username=username, name=name or entry.get("name") or username, role=role, contacts=ROLES[role].contacts)


def signed_in() -> User | None:
    """The signed-in user, or None while the sign-in form (or button) is shown: the caller stops the page then.

    With no users configured: the local admin on this machine; on another address an error, and the page stops."""
    if SESSION_USER in st.session_state:
        if st.session_state.pop(_SET_COOKIE, False):
            # set after the rerun that removed the form, so that the cookie component stays on the page
            st.session_state[_AUTHENTICATOR].cookie_controller.set_cookie()
        return st.session_state[SESSION_USER]
    try:
        content = read_users_file(load_settings().users_file)
    except UsersError as error:
        st.error(str(error))
        st.stop()
    configured = content["credentials"]["usernames"]
    if not configured:
        if not _serves_this_machine_only():
            st.error(no_users_message())
            st.stop()
        return LOCAL_ADMIN
    if single_sign_on():
        return _single_sign_on_user(configured)
    return _password_user(content)


def sign_out_button() -> None:
    """In the sidebar: a sign-out button, or the note that no users are configured."""
    if not read_users_file(load_settings().users_file)["credentials"]["usernames"]:
        st.sidebar.info(NO_USERS_NOTE)
        return
    if SESSION_USER not in st.session_state:
        return
    if single_sign_on():
        if st.sidebar.button("Sign out", key="crm_sign_out"):
            st.session_state.pop(SESSION_USER, None)
            st.logout()
        return
    if st.session_state.get("authentication_status") and _AUTHENTICATOR in st.session_state:
        st.session_state[_AUTHENTICATOR].logout(
            "Sign out", "sidebar", key="crm_sign_out", callback=lambda _: st.session_state.pop(SESSION_USER, None)
        )
    elif st.sidebar.button("Sign out", key="crm_sign_out"):  # a user a test put in the session
        st.session_state.pop(SESSION_USER, None)
    if SESSION_USER not in st.session_state:
        # No rerun: the component that deletes the cookie must stay on the page to run in the browser.
        st.sidebar.success("Signed out. Reload the page to sign in again.")
        st.stop()


def single_sign_on() -> bool:
    """Whether Streamlit's OIDC sign-in is configured: an ``[auth]`` section in .streamlit/secrets.toml."""
    return st.secrets.load_if_toml_exists() and "auth" in st.secrets


def _serves_this_machine_only() -> bool:
    # No address is not this machine: Streamlit then listens on every interface.
    return is_loopback(st.get_option("server.address"))


def _single_sign_on_user(configured: dict) -> User | None:
    if not st.user.is_logged_in:
        st.button("Sign in", key="crm_single_sign_on", on_click=st.login, type="primary")
        return None
    email = str(st.user.get("email") or "").lower()
    known = {name.lower(): entry for name, entry in configured.items()}
    try:
        user = user_for(email, known.get(email), name=st.user.get("name"))
    except UsersError as error:
        st.error(str(error))
        st.button("Sign out", key="crm_sign_out_unknown", on_click=st.logout)
        return None
    st.session_state[SESSION_USER] = user
    return user


def _authenticator(content: dict):
    """streamlit-authenticator's Authenticate, built once per session from the users file (it keeps its own copy
    of the credentials and writes nothing back)."""
    if _AUTHENTICATOR not in st.session_state:
        import streamlit_authenticator as stauth

        cookie = content.get("cookie") or {}
        key = cookie.get("key")
        st.session_state[_AUTHENTICATOR] = stauth.Authenticate(
            copy.deepcopy(content["credentials"]),
            cookie.get("name") or COOKIE_NAME,
            key or secrets.token_hex(32),
            # a file written by hand without a cookie key: no cookie rather than one signed with a guessable key
            cookie.get("expiry_days", COOKIE_EXPIRY_DAYS) if key else 0,
            auto_hash=False,
        )
    return st.session_state[_AUTHENTICATOR]


def _password_user(content: dict) -> User | None:
    from streamlit_authenticator import LoginError

    authenticator = _authenticator(content)
    try:
        authenticator.login(
            location="main",
            fields={"Form name": "Sign in", "Username": "User name", "Password": "Password", "Login": "Sign in"},
            key="crm_sign_in",
        )
    except LoginError as error:  # a cookie naming a user removed since
        st.error(str(error))
        return None
    status = st.session_state.get("authentication_status")
    if status is False:
        st.error("The user name or the password is wrong.")
    if not status:
        return None
    username = st.session_state["username"]
    # streamlit-authenticator compares user names in lower case; a file written by hand may not be
    known = {name.lower(): entry for name, entry in content["credentials"]["usernames"].items()}
    try:
        user = user_for(username, known.get(username))
    except UsersError as error:
        st.error(str(error))
        return None
    st.session_state[SESSION_USER] = user
    st.session_state[_SET_COOKIE] = True
    st.rerun()  # the form drawn above goes
