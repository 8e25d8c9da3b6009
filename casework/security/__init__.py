"""The encrypted store's primitives: keyring, envelope encryption, blind indexes.

Only ``app.py`` knows about Flask: it holds the application's keyring. Models
declare encrypted attributes with :mod:`casework.security.columns`; services
never encrypt or decrypt themselves. See ``docs/encryption.md`` for the key
hierarchy and the byte formats.
"""
