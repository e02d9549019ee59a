"""The Ningbo model: its metadata, outputs table, structure and PySD reference runs."""
