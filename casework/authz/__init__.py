"""Authorisation: the principal, the permissions table, the route guard and office scope.

It sits above the primitives and below every feature, so the access log and
the features can all declare and check permissions without importing each
other.
"""
