"""Differential-test driver around the Python `scitokens` library.

    python -I -B python-harness.py ISSUER KID PUBLIC_KEY_PEM_FILE

Stores the PEM public key for ISSUER/KID in the library's own key cache (a SQLite file
under $XDG_CACHE_HOME/scitokens, which the test points at a temporary folder), prints
READY, then answers one case per stdin line, in order:

    in:  TOKEN \t AUTHZ \t PATH \t N \t AUD_1 \t ... \t AUD_N
    out: ALLOW
         DENY \t STAGE \t MESSAGE     (STAGE: deserialize, enforcer_create, enforcer_test)
         BAD \t MESSAGE               (the line could not be parsed)

Each case goes through the library as an nginx-scitokens-like deployment calls it:
SciToken.deserialize(token, audience=...), then Enforcer(issuer, audience=...) and
enforcer.test(token, authz, path).

Why the key cache rather than deserialize's `public_key` argument: deployments do not pass
a key; deserialize then looks the key up by the token's (unverified) `iss` and `kid` in the
KeyCache, and downloads it on a miss. Filling that cache beforehand keeps the lookup by
issuer and kid exactly as deployed, and only replaces the download. The cache entry is
valid and not due for refresh for a day, so the library never tries to refresh it; and
since the test's issuer is plain HTTP, the library would refuse to fetch from it anyway
(NonHTTPSIssuer, raised before any request).

Accepted audiences: none is given as audience=None (the Enforcer's default; an empty
string or list behaves the same, since the library tests `not self._audience`), one as the
plain string (as nginx-scitokens passes its `audience` setting), several as a list.

Messages: an exception is written as `ExceptionClass: text`; a test() that returns False
as `returned False; last_failure: text` (the library keeps the reason in
Enforcer.last_failure). Any exception, expected or not, is an answer (a DENY at the stage
of the call that raised it), never the end of the driver.
"""

import sys

import scitokens
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from scitokens.utils.keycache import KeyCache

# A day: longer than any test run, so the cached key is neither expired nor due for refresh.
KEY_CACHE_SECONDS = 86400


def one_line(text):
    """The text on one line: tabs and line breaks become spaces."""
    return "".join(" " if char in "\t\r\n" else char for char in text)


def described(error):
    return one_line(f"{type(error).__name__}: {error}")


def audience_argument(audiences):
    if len(audiences) == 0:
        return None
    if len(audiences) == 1:
        return audiences[0]
    return list(audiences)


def answer(line, issuer):
    fields = line.split("\t")
    if len(fields) < 4:
        return "BAD\texpected TOKEN, AUTHZ, PATH and an audience count"
    token_text, authz, path, count = fields[:4]
    audiences = fields[4:]
    if not count.isdigit() or int(count) != len(audiences):
        return "BAD\taudience count does not match the fields"
    audience = audience_argument(audiences)

    try:
        token = scitokens.SciToken.deserialize(token_text, audience=audience)
    except Exception as error:  # every refusal of the library is an answer
        return f"DENY\tdeserialize\t{described(error)}"
    try:
        enforcer = scitokens.Enforcer(issuer, audience=audience)
    except Exception as error:
        return f"DENY\tenforcer_create\t{described(error)}"
    try:
        allowed = enforcer.test(token, authz, path)
    except Exception as error:
        return f"DENY\tenforcer_test\t{described(error)}"
    if allowed is True:
        return "ALLOW"
    return f"DENY\tenforcer_test\t{one_line(f'returned {allowed!r}; last_failure: {enforcer.last_failure}')}"


def store_key(issuer, kid, pem_file):
    with open(pem_file, "rb") as pem:
        public_key = load_pem_public_key(pem.read())
    cache = KeyCache.getinstance()
    if cache.cache_location is None:
        raise RuntimeError("the scitokens key cache could not be created (see the warnings above)")
    cache.addkeyinfo(issuer, kid, public_key, cache_timer=KEY_CACHE_SECONDS, next_update=KEY_CACHE_SECONDS)
    # addkeyinfo logs and swallows its errors: check that the key is there, without the
    # lookup (a miss would make the library try to download the key).
    if not any(row[0] == issuer and row[2] == kid for row in cache.list_keys()):
        raise RuntimeError(f"the key for {issuer} / {kid} is not in the scitokens key cache {cache.cache_location}")


def main(argv):
    if len(argv) != 4:
        sys.stderr.write(f"usage: {argv[0]} ISSUER KID PUBLIC_KEY_PEM_FILE\n")
        return 2
    issuer, kid, pem_file = argv[1:]
    sys.stdin.reconfigure(encoding="utf-8", errors="surrogateescape", newline="\n")
    sys.stdout.reconfigure(encoding="utf-8", errors="backslashreplace", newline="\n", line_buffering=True)
    store_key(issuer, kid, pem_file)
    print("READY")
    for line in sys.stdin:
        print(answer(line.rstrip("\n"), issuer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
