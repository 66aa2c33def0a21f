"""Users and roles: `crm users` keeps a private file of bcrypt hashes that streamlit-authenticator accepts, the
dashboards refuse other machines until users exist, and the sign-in decides who sees what."""

import os
import stat
import subprocess

import pytest
import yaml
from click.testing import CliRunner
from streamlit import config as streamlit_config
from streamlit.testing.v1 import AppTest
from streamlit_authenticator import Hasher

from pipelines import cli
from pipelines.users import (
    ROLES,
    UsersError,
    add_user,
    check_name,
    check_password,
    is_loopback,
    list_users,
    no_users_message,
    read_users_file,
    remove_user,
)

PASSWORD = "correct horse battery"


@pytest.fixture
def users_file(tmp_path, monkeypatch):
    """Every place `crm` writes points into tmp_path, the users file too; the process umask is restored after
    (`crm` sets 077)."""
    for key, path in {
        "CRM_USERS_FILE": tmp_path / "users.yaml",
        "CRM_WAREHOUSE_PATH": tmp_path / "warehouse" / "crm.duckdb",
        "CRM_PUBLISHED_DIR": tmp_path / "published",
        "CRM_DAGSTER_HOME": tmp_path / "dagster",
        "CRM_LANDING_DIR": tmp_path / "landing",
    }.items():
        monkeypatch.setenv(key, str(path))
    umask = os.umask(0o022)
    os.umask(umask)
    yield tmp_path / "users.yaml"
    os.umask(umask)


def _crm(*arguments: str, stdin: str | None = None):
    return CliRunner().invoke(cli.main, list(arguments), input=stdin)


# --- roles and the rules of names, passwords and addresses --------------------------------------------------------


def test_only_marketing_service_and_admin_see_contact_details():
    assert {name for name, role in ROLES.items() if role.contacts} == {"marketing", "service", "admin"}
    assert set(ROLES) == {"executive", "analyst", "marketing", "service", "admin"}
    assert all(role.name == name and role.description for name, role in ROLES.items())


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("crm.example.org", False),
        ("", False),  # Streamlit then listens on every interface
        (None, False),
    ],
)
def test_loopback_addresses_are_this_machine_only(address, loopback):
    assert is_loopback(address) is loopback


@pytest.mark.parametrize("name", ["", "a" * 65, "two words", "semi;colon", "ünï", "a/b"])
def test_a_name_outside_letters_digits_and_dot_underscore_at_dash_is_refused(name):
    with pytest.raises(UsersError, match="1 to 64 characters"):
        check_name(name)


def test_names_are_kept_in_lower_case_as_streamlit_authenticator_compares_them():
    assert check_name("Ana.Garcia@Example.ORG") == "ana.garcia@example.org"
    assert check_name("a" * 64) == "a" * 64


@pytest.mark.parametrize(
    ("password", "problem"),
    [("seven77", "at least 8"), (" spaced password", "space"), ("spaced password ", "space"), ("é" * 37, "72 bytes")],
)
def test_a_password_the_sign_in_cannot_check_is_refused(password, problem):
    with pytest.raises(UsersError, match=problem):
        check_password(password)


# --- the users file ------------------------------------------------------------------------------------------------


def test_an_added_user_has_a_bcrypt_hash_streamlit_authenticator_accepts_in_a_private_file(users_file):
    assert add_user(users_file, "Ana", "service", PASSWORD) is False
    content = yaml.safe_load(users_file.read_text(encoding="utf-8"))
    entry = content["credentials"]["usernames"]["ana"]
    assert entry["roles"] == ["service"] and entry["name"] == "ana"
    assert PASSWORD not in users_file.read_text(encoding="utf-8")
    assert Hasher.is_hash(entry["password"])
    assert Hasher.check_pw(PASSWORD, entry["password"])
    assert not Hasher.check_pw(PASSWORD + "!", entry["password"])
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
    assert content["cookie"]["name"] == "crm_dashboards" and content["cookie"]["expiry_days"] == 7
    assert len(content["cookie"]["key"]) == 64 and int(content["cookie"]["key"], 16) >= 0
    assert [path.name for path in users_file.parent.iterdir()] == ["users.yaml"]  # no temporary file left


def test_adding_an_existing_user_replaces_role_and_password_and_keeps_the_cookie_key(users_file):
    add_user(users_file, "ana", "service", PASSWORD)
    add_user(users_file, "bob", "analyst", PASSWORD)
    key = read_users_file(users_file)["cookie"]["key"]
    assert add_user(users_file, "ANA", "marketing", "another password") is True
    content = read_users_file(users_file)
    assert content["cookie"]["key"] == key
    entry = content["credentials"]["usernames"]["ana"]
    assert entry["roles"] == ["marketing"]
    assert Hasher.check_pw("another password", entry["password"])
    assert not Hasher.check_pw(PASSWORD, entry["password"])
    assert list_users(users_file) == [("ana", "marketing"), ("bob", "analyst")]


def test_removing_a_user_leaves_the_others(users_file):
    add_user(users_file, "ana", "service", PASSWORD)
    add_user(users_file, "bob", "analyst", PASSWORD)
    remove_user(users_file, "Ana")
    assert list_users(users_file) == [("bob", "analyst")]
    with pytest.raises(UsersError, match=r"no user 'ana'.*users: bob"):
        remove_user(users_file, "ana")


def test_an_unknown_role_is_refused_naming_the_roles(users_file):
    with pytest.raises(UsersError, match="executive, analyst, marketing, service, admin"):
        add_user(users_file, "ana", "boss", PASSWORD)
    assert not users_file.exists()


# --- crm users and crm dashboard ------------------------------------------------------------------------------------


def test_crm_users_add_list_remove(users_file):
    added = _crm("users", "add", "Ana", "--role", "service", "--password-stdin", stdin=PASSWORD + "\n")
    assert added.exit_code == 0, added.output
    assert "User ana added with role service" in added.output
    prompted = _crm("users", "add", "bob", "--role", "analyst", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert prompted.exit_code == 0, prompted.output
    assert PASSWORD not in prompted.output  # the prompt hides what is typed
    replaced = _crm("users", "add", "ana", "--role", "admin", "--password-stdin", stdin="a new password\n")
    assert "existed: their role is now admin" in replaced.output
    listed = _crm("users", "list")
    assert listed.exit_code == 0
    assert [line.split() for line in listed.output.splitlines()] == [["ana", "admin"], ["bob", "analyst"]]
    assert "$2" not in listed.output
    assert _crm("users", "remove", "bob").exit_code == 0
    assert [line.split()[0] for line in _crm("users", "list").output.splitlines()] == ["ana"]


def test_crm_users_add_refuses_a_short_password_an_unknown_role_and_prompts_that_differ(users_file):
    short = _crm("users", "add", "ana", "--role", "service", "--password-stdin", stdin="short\n")
    assert short.exit_code != 0 and "at least 8 characters" in short.output
    role = _crm("users", "add", "ana", "--role", "boss", "--password-stdin", stdin=PASSWORD + "\n")
    assert role.exit_code != 0 and "executive, analyst, marketing, service, admin" in role.output
    differ = _crm("users", "add", "ana", "--role", "service", stdin=f"{PASSWORD}\nsomething else\n")
    assert differ.exit_code != 0
    assert not users_file.exists()


def test_crm_dashboard_refuses_another_address_until_users_exist(users_file, monkeypatch):
    started = []
    monkeypatch.setattr(subprocess, "call", lambda command: started.append(command) or 0)
    refused = _crm("dashboard", "--address", "0.0.0.0")
    assert refused.exit_code != 0
    assert no_users_message() in refused.output
    assert started == []
    local = _crm("dashboard")
    assert local.exit_code == 0 and "anyone on this machine is admin" in local.output
    assert started[-1][started[-1].index("--server.address") + 1] == "localhost"
    add_user(users_file, "ana", "service", PASSWORD)
    served = _crm("dashboard", "--address", "0.0.0.0")
    assert served.exit_code == 0, served.output
    assert started[-1][started[-1].index("--server.address") + 1] == "0.0.0.0"


# --- the sign-in (dashboards/auth.py) -------------------------------------------------------------------------------


def _signed_in_app():
    import streamlit as st

    from dashboards.auth import sign_out_button, signed_in

    user = signed_in()
    if user is None:
        st.stop()
    st.markdown(f"user={user.username} role={user.role} contacts={user.contacts}")
    sign_out_button()


@pytest.fixture
def server_address():
    """Set Streamlit's server.address for an AppTest (it runs in this process), and put the old one back."""
    before = streamlit_config.get_option("server.address")
    yield lambda address: streamlit_config.set_option("server.address", address)
    streamlit_config.set_option("server.address", before)


def _shown(app) -> list[str]:
    return [element.value for element in app.markdown]


def test_without_users_this_machine_is_admin_and_told_how_to_add_users(users_file, server_address):
    server_address("127.0.0.1")
    app = AppTest.from_function(_signed_in_app, default_timeout=30).run()
    assert not app.exception, app.exception
    assert "user=local role=admin contacts=True" in _shown(app)
    assert [note.value for note in app.sidebar.info] == [
        "No users are configured: anyone on this machine is admin. Add users: crm users add NAME --role ROLE"
    ]


@pytest.mark.parametrize("address", ["0.0.0.0", "", None, "192.168.1.20"])
def test_without_users_another_address_shows_nothing_but_the_way_to_add_users(users_file, server_address, address):
    # an empty or missing address is every interface to Streamlit
    server_address(address)
    app = AppTest.from_function(_signed_in_app, default_timeout=30).run()
    assert not app.exception, app.exception
    assert [error.value for error in app.error] == [no_users_message()]
    assert not any(text.startswith("user=") for text in _shown(app))


def _sign_in(app, name: str, password: str):
    app.text_input[0].input(name)
    app.text_input[1].input(password)
    return app.button[0].click().run()


def test_with_users_nothing_shows_before_the_password_is_right(users_file, server_address):
    server_address("0.0.0.0")
    add_user(users_file, "ana", "service", PASSWORD)
    app = AppTest.from_function(_signed_in_app, default_timeout=30).run()
    assert not app.exception, app.exception
    assert [field.label for field in app.text_input] == ["User name", "Password"]
    assert not any(text.startswith("user=") for text in _shown(app))
    _sign_in(app, "ana", PASSWORD + "x")
    assert [error.value for error in app.error] == ["The user name or the password is wrong."]
    assert not any(text.startswith("user=") for text in _shown(app))
    _sign_in(app, "Ana", PASSWORD)
    assert not app.exception, app.exception
    assert "user=ana role=service contacts=True" in _shown(app)
    assert not app.text_input  # the form is gone
    assert app.session_state["crm_user"].role == "service"
    app.sidebar.button[0].click().run()  # Sign out
    assert "crm_user" not in app.session_state and not app.session_state["authentication_status"]
    assert [text.value for text in app.sidebar.success] == ["Signed out. Reload the page to sign in again."]
    app.run()
    assert [field.label for field in app.text_input] == ["User name", "Password"]


def test_a_role_outside_the_roles_is_refused_naming_it(users_file, server_address):
    server_address("localhost")
    add_user(users_file, "ana", "service", PASSWORD)
    content = read_users_file(users_file)
    content["credentials"]["usernames"]["ana"]["roles"] = ["superuser"]
    users_file.write_text(yaml.safe_dump(content), encoding="utf-8")
    app = _sign_in(AppTest.from_function(_signed_in_app, default_timeout=30).run(), "ana", PASSWORD)
    assert not app.exception, app.exception
    assert len(app.error) == 1 and "'superuser' is not one of the roles" in app.error[0].value
    assert not any(text.startswith("user=") for text in _shown(app))


def test_a_user_a_test_puts_in_the_session_is_signed_in_and_signs_out(users_file, server_address):
    from dashboards.auth import User

    server_address("localhost")
    add_user(users_file, "ana", "service", PASSWORD)
    app = AppTest.from_function(_signed_in_app, default_timeout=30)
    app.session_state["crm_user"] = User("bob", "Bob", "analyst", contacts=False)
    app.run()
    assert "user=bob role=analyst contacts=False" in _shown(app)
    app.sidebar.button[0].click().run()
    assert "crm_user" not in app.session_state
    assert [text.value for text in app.sidebar.success] == ["Signed out. Reload the page to sign in again."]
    app.run()
    assert [field.label for field in app.text_input] == ["User name", "Password"]


SINGLE_SIGN_ON = {
    "auth": {
        "redirect_uri": "http://localhost:8501/oauth2callback",
        "cookie_secret": "not a real secret",
        "client_id": "crm",
        "client_secret": "not a real secret",
        "server_metadata_url": "https://login.example.org/.well-known/openid-configuration",
    }
}


def test_with_single_sign_on_the_email_the_provider_gives_finds_the_role(users_file, server_address):
    server_address("0.0.0.0")
    add_user(users_file, "ana@example.org", "marketing", PASSWORD)
    app = AppTest.from_function(_signed_in_app, default_timeout=30)
    app.secrets = SINGLE_SIGN_ON
    app.user = {"is_logged_in": False}
    app.run()
    assert not app.exception, app.exception
    assert [button.label for button in app.button] == ["Sign in"] and not app.text_input
    app.user = {"is_logged_in": True, "email": "Ana@Example.org", "name": "Ana García"}
    app.run()
    assert not app.exception, app.exception
    assert "user=ana@example.org role=marketing contacts=True" in _shown(app)
    assert app.session_state["crm_user"].name == "Ana García"


def test_with_single_sign_on_an_email_not_in_the_users_file_sees_nothing(users_file, server_address):
    server_address("0.0.0.0")
    add_user(users_file, "ana@example.org", "marketing", PASSWORD)
    app = AppTest.from_function(_signed_in_app, default_timeout=30)
    app.secrets = SINGLE_SIGN_ON
    app.user = {"is_logged_in": True, "email": "eve@example.org"}
    app.run()
    assert not app.exception, app.exception
    assert len(app.error) == 1 and "crm users add eve@example.org --role ROLE" in app.error[0].value
    assert not any(text.startswith("user=") for text in _shown(app))


def test_single_sign_on_maps_the_email_to_its_users_file_entry():
    from dashboards.auth import User, user_for

    entry = {"name": "ana@example.org", "password": "$2b$12$x", "roles": ["analyst"]}
    assert user_for("ana@example.org", entry, name="Ana García") == User(
        "ana@example.org", "Ana García", "analyst", contacts=False
    )
    with pytest.raises(UsersError, match="crm users add eve@example.org --role ROLE"):
        user_for("eve@example.org", None)
    with pytest.raises(UsersError, match="role None is not one of the roles"):
        user_for("ana@example.org", {"name": "ana@example.org"})
