"""open_clip architecture configs shipped with clipvil (JSON files, registered lazily).

This folder is a package only so that the JSON files are installed with it.
"""
