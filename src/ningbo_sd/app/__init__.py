"""The Panel app: state (plain ``param``), controls, charts and views."""
