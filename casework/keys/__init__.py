"""Key administration, an operator feature: rotate, retire, shred, status, MFA-seed re-wrap.

It sits above users and the access log (it re-wraps MFA seeds and audits every
step) and below cases, which register the re-indexing work it needs.
"""
