"""The dashboards' entry point: `crm dashboard` (or `make dashboard`, or `streamlit run dashboards/app.py`).

Signs the user in (dashboards/auth.py), then offers the pages their role may open (dashboards/registry.py: every
file in dashboards/views/ that declares a PAGE). Nothing is shown before sign-in but the sign-in form.
"""

import sys
from pathlib import Path

import streamlit as st

# Streamlit runs this file as a script; make the project's packages importable from any working directory.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboards import theme  # noqa: F401  (registers the chart theme)
from dashboards.auth import sign_out_button, signed_in
from dashboards.registry import pages_for

st.set_page_config(page_title="Analytical CRM", page_icon=":material/insights:", layout="wide")
user = signed_in()
if user is None:
    st.stop()
pages = pages_for(user.role)
if not pages:
    st.error(f"Your role ({user.role}) opens no page. Ask an admin to change it: crm users add NAME --role ROLE.")
    st.stop()
with st.sidebar:
    st.caption(f"Signed in as **{user.name}** · {user.role}")
    sign_out_button()
navigation = st.navigation(
    [st.Page(spec.path, title=spec.title, icon=spec.icon, url_path=spec.page_id) for spec in pages]
)
navigation.run()
