"""Code lists for clients: every enumeration the API accepts, with labels in the
caller's language (``GET /api/v1/codes``). It reads the vocabularies of the features
below it and changes nothing, so it sits on the top floor."""
