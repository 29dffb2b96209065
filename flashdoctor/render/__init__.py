"""Renderers: turn result values into text. They never compute decisions."""
