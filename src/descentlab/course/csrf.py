"""Cross-site request forgery: a state-changing POST must carry the learner's form token.

Another site can make a learner's browser POST here (a hidden form), but it cannot read our pages,
so it cannot know the token. The token is an HMAC of the learner id under a server secret kept in
the database (the HMAC-based token pattern of OWASP's CSRF Prevention Cheat Sheet): nothing to
store per learner, tokens survive restarts, and one learner's token is worthless for another.
The learner cookie is also ``SameSite=Lax``, so browsers do not send it on cross-site POSTs at
all; the token is the check that does not depend on the browser.

Pages send it as the form field :data:`FORM_FIELD`; the JSON API as the header :data:`HEADER`
(a cross-site form cannot set headers, and no CORS policy lets another origin do so).
"""

from __future__ import annotations

import hashlib
import hmac

FORM_FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
REFUSED = (
    "This request did not carry your form token, so it may not have come from this site; "
    "nothing was changed. Reload the page and try again."
)


def token_for(secret: str, learner: str) -> str:
    """The learner's form token: HMAC-SHA256 of the learner id under the server's secret."""
    return hmac.new(secret.encode(), learner.encode(), hashlib.sha256).hexdigest()


def is_valid(secret: str, learner: str, token: str | None) -> bool:
    """Whether ``token`` is this learner's (compared in constant time)."""
    return bool(token) and hmac.compare_digest(token_for(secret, learner), token)
