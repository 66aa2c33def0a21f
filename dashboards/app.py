"""The dashboards' entry point: `streamlit run dashboards/app.py` (or `make dashboard`)."""

import sys
from pathlib import Path

import streamlit as st

# Streamlit runs this file as a script; make the project's packages importable from any working directory.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

st.set_page_config(page_title="Analytical CRM", layout="wide")
navigation = st.navigation([st.Page(Path(__file__).parent / "pages" / "overview.py", title="Overview", default=True)])
navigation.run()
