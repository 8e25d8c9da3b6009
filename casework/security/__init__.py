"""The encrypted store's primitives: keyring, envelope encryption, blind indexes.

Nothing here knows about Flask. Models declare encrypted attributes with
:mod:`casework.security.columns`; services never encrypt or decrypt themselves.
See ``docs/encryption.md`` for the key hierarchy and the byte formats.
"""
